//! Pure restore planning: the dependency graph over every kind, selection
//! with dependency closure, overrides, and the plan (what to create, update,
//! leave, skip, delete; which triggers to stop and start). No IO: the plan is
//! data, printed by `--plan` and then executed by `ops::restore`.

pub mod binding;
pub mod drill;
pub mod duration;
pub mod events;
pub mod graph;
pub mod overrides;
pub mod posture;
pub mod region_map;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod select;

pub use graph::{Cycle, Graph};
pub use overrides::{Overrides, OverridesError};
pub use restore::{Action, Plan, PlanError, PlanOptions, TargetState, TriggerMode};
pub use select::{Selector, SelectorError};
