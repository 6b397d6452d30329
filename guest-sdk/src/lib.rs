//! # oar-guest: write OAR analysis modules
//!
//! An OAR module is analysis logic that runs inside a data holder's sandbox. It never sees a row:
//! it builds aggregate [`Plan`]s with a fluent builder, the host answers each with a table that
//! has passed the privacy gate (at least the minimum number of distinct people per cell,
//! differential-privacy noise, budget charged), and the module publishes tables with
//! [`Context::emit`].
//!
//! ```no_run
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
//! ```
//!
//! Built for `wasm32-wasip2`, `export_module!` exports `run` through the WIT world in
//! `wit/oar.wit`. Built natively, the same function can be driven by any [`Host`], such as the
//! in-process harness in `oar-host`, so modules are unit-tested with `cargo test`.
#![deny(missing_docs)]

mod error;
mod expr;
mod host;
pub mod per_unit;
pub mod plan;
mod query;
pub mod schema;
pub mod table;
mod value;

pub use error::Error;
pub use expr::{col, lit, IntoExpr};
pub use host::{run_with_host, Context, Host, RunFn};
pub use plan::{Expr, Plan};
pub use query::Query;
pub use schema::{ColumnSchema, ColumnType, DatasetSchema};
pub use table::{Row, Suppression, Table};
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
/// expands to nothing natively.
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
