//! # oar-guest: write OAR analysis modules
//!
//! An OAR module is analysis logic that runs inside a data holder's sandbox. It never sees a row:
//! it builds aggregate [`Plan`]s with a fluent builder, the host answers each with a table that
//! has passed the privacy gate (at least the minimum number of distinct people per cell,
//! differential-privacy noise, budget charged), and the module publishes tables with
//! [`Context::emit`].
//!
//! ```
//! use oar_guest::{col, Context, Error};
//!
//! #[derive(serde::Deserialize)]
//! struct Params { epsilon: f64 }
//!
//! fn run(ctx: &mut Context, p: Params) -> Result<(), Error> {
//!     let table = ctx
//!         .dataset("cdr")?
//!         .derive("day", col("timestamp").date())
//!         .group_by(["region", "day"])
//!         .count_units("population")
//!         .release(p.epsilon)?;
//!     ctx.emit("population", &table)
//! }
//! oar_guest::export_module!(run);
//!
//! // Natively, the same `run` is tested against a scripted host that answers with a given table.
//! use oar_guest::testing::{cdr_schema, FakeHost};
//! use oar_guest::Table;
//! let mut answer = Table::new(["region", "day"], ["population"]);
//! answer.push(vec!["North".into(), "2024-03-01".into()], vec![1830.0]);
//! let mut host = FakeHost::new().with_dataset(cdr_schema()).answer(answer);
//! oar_guest::run_with_host(&mut host, r#"{"epsilon": 1.0}"#, run)?;
//! assert_eq!(host.plans()[0].group_by, ["region", "day"]);
//! let published = host.emitted("population").unwrap();
//! assert_eq!(published.get(&["North".into(), "2024-03-01".into()], "population"), Some(1830.0));
//! # Ok::<(), Error>(())
//! ```
//!
//! Built for `wasm32-wasip2`, `export_module!` exports `run` through the WIT world in
//! `wit/oar.wit`. Built natively, the same function can be driven by any [`Host`], such as the
//! in-process harness in `oar-host` or the scripted [`testing::FakeHost`], so modules are
//! unit-tested with `cargo test`.
//!
//! ## Typed columns
//!
//! [`col`] names a column without saying what it holds, so `col("region").hour()` compiles and
//! is refused at release. The typed handles [`num`], [`text`], [`time`] and [`flag`] carry the
//! column's kind and offer only what fits it: `hour()` on a time, arithmetic and `bin()` on a
//! number, a flag as a filter; `sum`, `mean` and `quantile` take a number column. They convert
//! into [`Expr`] and mix freely with `col`:
//!
//! ```
//! use oar_guest::testing::{meters_schema, FakeHost};
//! use oar_guest::{flag, num, text, time, Context, Error, Table};
//!
//! let (kwh, region, read_at, consent) = (num("kwh"), text("region"), time("read_at"), flag("consent"));
//!
//! let mut answer = Table::new(["region", "evening"], ["meters", "mean_kwh"]);
//! answer.push(vec!["North".into(), true.into()], vec![640.0, 1.21]);
//! let mut host = FakeHost::new().with_dataset(meters_schema()).answer(answer);
//! let mut ctx = Context::new(&mut host);
//!
//! let evening_load = ctx
//!     .dataset("meters")?
//!     .filter(consent.and(region.is_in(["North", "South"])))
//!     .derive("evening", read_at.hour().ge(17))
//!     .group_by([region.name(), "evening"])
//!     .count_units("meters")
//!     .mean("mean_kwh", &kwh)
//!     .release(1.0)?;
//! assert_eq!(evening_load.get(&["North".into(), true.into()], "mean_kwh"), Some(1.21));
//! # Ok::<(), Error>(())
//! ```
//!
//! ## Mistakes are reported before anything is sent
//!
//! [`Query::release`] checks the plan against the dataset's public schema first and names what
//! is wrong: an unknown column (with the ones that exist), a group key without a public domain,
//! a sum of a text column, a mean without bounds (with the `mean_clamped` call to write), bounds
//! that are not an interval, a quantile outside (0, 1), two aggregates with one name. See
//! [`Error`] and [`Query::check`].
#![deny(missing_docs)]

mod error;
mod expr;
mod facts;
mod host;
#[cfg(feature = "json-schema")]
pub mod json_schema;
pub mod per_unit;
pub mod plan;
mod query;
pub mod schema;
pub mod table;
pub mod testing;
pub mod typed;
mod validate;
mod value;

pub use error::Error;
pub use expr::{col, lit, IntoExpr, IntoPredicate};
pub use host::{run_with_host, Context, Host, RunFn};
pub use plan::{Expr, Plan};
pub use query::Query;
pub use schema::{ColumnSchema, ColumnType, DatasetSchema};
pub use table::{Row, Suppression, Table};
pub use typed::{
    flag, num, text, time, Column, ColumnRef, Flag, Kind, Literal, Num, Operand, Text, Time,
};
pub use value::Value;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "module",
        pub_export_macro: true,
        export_macro_name: "__oar_export_world",
        default_bindings_module: "oar_guest::bindings",
    });
}

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

/// Exports `run` (a [`RunFn`]) as the module's entry point when built for `wasm32-wasip2`;
/// expands to nothing natively, where the same function is driven by [`run_with_host`].
///
/// ```
/// use oar_guest::{testing::FakeHost, Context, Error};
///
/// fn run(ctx: &mut Context, _: serde_json::Value) -> Result<(), Error> {
///     ctx.log("hello from the module");
///     Ok(())
/// }
/// oar_guest::export_module!(run);
///
/// let mut host = FakeHost::new();
/// oar_guest::run_with_host(&mut host, "", run)?;
/// assert_eq!(host.log_lines(), ["hello from the module"]);
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! export_module {
    ($run:path) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __OarModule;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::Guest for __OarModule {
            fn run(
                params: ::std::string::String,
            ) -> ::std::result::Result<(), ::std::string::String> {
                $crate::wasm::run_entry(&params, $run)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__oar_export_world!(__OarModule with_types_in $crate::bindings);
    };
}
