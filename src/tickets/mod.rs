//! Tickets: kefu's own record of every chat the bot could not finish, independent of the
//! WeCom session. [`model`] holds the typed states and priorities.

pub mod calendar;
pub mod model;
pub mod priority;
pub mod simulation;
pub mod sla;

pub use calendar::{BusinessCalendar, CalendarError, CalendarSpec, Window};
pub use model::{Priority, TicketStatus};
pub use priority::PriorityTable;
pub use sla::{SlaPolicy, SlaSettings, Target};
