//! The `shape` modality: OBJ meshes as dense 3-D fields on a voxel grid (truncated signed distance
//! or occupancy), fitted by 3-D ASMR; the surface is extracted again for OBJ output and metrics.
//! (Work in progress: the fields, surfaces and metrics; the modality's registration follows.)

pub mod bvh;
pub mod field;
pub mod mesh;
pub mod metrics;
pub mod shapes;
pub mod surface;
