//! Labelled figures for run folders: pictures and heat maps as panels with titles, axes in data
//! units and a colour bar where colour carries a value, and a quality curve beside them. Every
//! picture a modality writes goes through here, so each one says what it shows.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::output::write_bytes_atomic;
use crate::trainer::StepRecord;

/// RGB pixels, row 0 at the top.
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Raster {
    /// A raster of `width x height` values in `[0, 1]` (raster order), coloured by `map`.
    pub fn from_values(
        width: usize,
        height: usize,
        values: &[f32],
        map: fn(f32) -> [u8; 3],
    ) -> Self {
        Self {
            width,
            height,
            rgb: values.iter().flat_map(|&v| map(v)).collect(),
        }
    }

    /// Nearest-neighbour resampling to `w x h`.
    fn resized(&self, w: usize, h: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            let sy = (y * self.height / h.max(1)).min(self.height.saturating_sub(1));
            for x in 0..w {
                let sx = (x * self.width / w.max(1)).min(self.width.saturating_sub(1));
                let i = (sy * self.width + sx) * 3;
                out.extend_from_slice(&self.rgb[i..i + 3]);
            }
        }
        out
    }
}

/// The data range a panel's picture spans: `x` left to right, `y` bottom to top.
#[derive(Debug, Clone, PartialEq)]
pub struct Axes {
    pub x: (f64, f64),
    pub x_desc: String,
    pub y: (f64, f64),
    pub y_desc: String,
}

/// One picture of a figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub raster: Raster,
    /// Axes in data units (a spectrogram's seconds and kHz); `None` for a photo-like picture,
    /// drawn with its aspect ratio kept and no axes.
    pub axes: Option<Axes>,
}

/// What colour means in a figure's heat maps: `map(0)` is `min`, `map(1)` is `max`.
#[derive(Debug, Clone, Copy)]
pub struct ColourBar<'a> {
    pub label: &'a str,
    pub min: f64,
    pub max: f64,
    pub map: fn(f32) -> [u8; 3],
}

/// A perceptually ordered dark-to-bright map (black, purple, red, orange, pale yellow).
pub fn magma(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 0.02],
        [0.32, 0.07, 0.48],
        [0.75, 0.17, 0.38],
        [0.98, 0.55, 0.22],
        [0.99, 0.99, 0.75],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let t = t * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mut out = [0u8; 3];
    for c in 0..3 {
        out[c] = ((STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f) * 255.0).round() as u8;
    }
    out
}

/// Gray levels for values in `[0, 1]`.
pub fn gray(t: f32) -> [u8; 3] {
    let v = (if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 255.0)
        .round() as u8;
    [v, v, v]
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::Invalid(format!("plotting {}: {e}", path.display()))
}

/// Draw one panel into `area`.
fn draw_panel(area: &Area, panel: &Panel, err: &dyn Fn(String) -> Error) -> Result<()> {
    let font = ("sans-serif", 15);
    match &panel.axes {
        Some(axes) => {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, font)
                .margin(8)
                .x_label_area_size(38)
                .y_label_area_size(52)
                .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(axes.x_desc.as_str())
                .y_desc(axes.y_desc.as_str())
                .label_style(("sans-serif", 12))
                .draw()
                .map_err(|e| err(e.to_string()))?;
            let (w, h) = chart.plotting_area().dim_in_pixel();
            let buf = panel.raster.resized(w as usize, h as usize);
            if let Some(img) = BitMapElement::with_owned_buffer((axes.x.0, axes.y.1), (w, h), buf) {
                chart
                    .draw_series(std::iter::once(img))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        None => {
            let titled = area
                .titled(&panel.title, font)
                .map_err(|e| err(e.to_string()))?;
            let (aw, ah) = titled.dim_in_pixel();
            let r = &panel.raster;
            // Fit inside the area with the aspect ratio kept.
            let scale = (aw as f64 / r.width as f64).min(ah as f64 / r.height as f64);
            let (w, h) = (
                ((r.width as f64 * scale) as u32).max(1),
                ((r.height as f64 * scale) as u32).max(1),
            );
            let x0 = (aw.saturating_sub(w) / 2) as i32;
            let buf = r.resized(w as usize, h as usize);
            if let Some(img) = BitMapElement::with_owned_buffer((x0, 0), (w, h), buf) {
                titled.draw(&img).map_err(|e| err(e.to_string()))?;
            }
        }
    }
    Ok(())
}

fn draw_bar(area: &Area, bar: &ColourBar, err: &dyn Fn(String) -> Error) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .margin_top(40)
        .margin_bottom(46)
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..1f64, bar.min..bar.max)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(bar.label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let (w, h) = chart.plotting_area().dim_in_pixel();
    let mut buf = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        let c = (bar.map)(1.0 - y as f32 / (h.max(2) - 1) as f32);
        for _ in 0..w {
            buf.extend_from_slice(&c);
        }
    }
    if let Some(img) = BitMapElement::with_owned_buffer((0.0, bar.max), (w, h), buf) {
        chart
            .draw_series(std::iter::once(img))
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// A figure of `panels` in a grid of `columns`, each about `cell` pixels, an optional colour bar on
/// the right, a title on top; written atomically as PNG.
pub fn write_panels(
    path: &Path,
    title: &str,
    panels: &[Panel],
    columns: usize,
    cell: (u32, u32),
    bar: Option<&ColourBar>,
) -> Result<()> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let bar_w = if bar.is_some() { 110 } else { 0 };
    let (w, h) = (cell.0 * columns as u32 + bar_w, cell.1 * rows as u32 + 40);
    render(path, (w, h), |root| {
        let err = plot_err(path);
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(e.to_string()))?;
        let (grid, right) = root.split_horizontally(cell.0 * columns as u32);
        for (area, panel) in grid.split_evenly((rows, columns)).iter().zip(panels) {
            draw_panel(area, panel, &err)?;
        }
        if let Some(bar) = bar {
            draw_bar(&right, bar, &err)?;
        }
        Ok(())
    })
}

/// `summary.png`: the reconstruction, the error map with its colour bar, and PSNR against training
/// time, side by side at a size that reads on a laptop screen.
pub fn write_summary(
    path: &Path,
    title: &str,
    reconstruction: &Panel,
    error: &Panel,
    bar: &ColourBar,
    records: &[StepRecord],
) -> Result<()> {
    let cell = (460u32, 420u32);
    render(path, (cell.0 * 3 + 110, cell.1 + 40), |root| {
        let err = plot_err(path);
        let root = root
            .titled(title, ("sans-serif", 20))
            .map_err(|e| err(e.to_string()))?;
        let (first, rest) = root.split_horizontally(cell.0);
        let (second, rest) = rest.split_horizontally(cell.0);
        let (bar_area, curve) = rest.split_horizontally(110);
        draw_panel(&first, reconstruction, &err)?;
        draw_panel(&second, error, &err)?;
        draw_bar(&bar_area, bar, &err)?;
        crate::plot::draw_curve(&curve, records, true, &err)
    })
}

/// Draw into a white `size` bitmap and write it as PNG.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area) -> Result<()>,
) -> Result<()> {
    let err = plot_err(path);
    crate::plot::register_font();
    let mut buf = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        draw(&root)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let img =
        image::RgbImage::from_raw(size.0, size.1, buf).ok_or_else(|| err("buffer size".into()))?;
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| err(e.to_string()))?;
    write_bytes_atomic(path, &png)
}
