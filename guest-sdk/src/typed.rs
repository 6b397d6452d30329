//! Typed column handles: compile-time help for what a column can do.
//!
//! [`col`] gives an untyped [`Expr`]: `col("region").hour()` or a sum of a text
//! column compile, and are caught at release. A typed handle says what its column holds and
//! offers only what fits:
//!
//! | handle | column types | offers |
//! |---|---|---|
//! | [`num`]`("kwh")`: `Column<Num>` | int, float | arithmetic, comparisons, `is_in`, `bin`; input of `sum`, `mean`, `quantile` |
//! | [`text`]`("region")`: `Column<Text>` | str | `eq`, `ne`, `is_in` |
//! | [`time`]`("read_at")`: `Column<Time>` | datetime, date | `date`, `hour`, `half_hour`, comparisons with `"YYYY-MM-DD"` |
//! | [`flag`]`("consent")`: `Column<Flag>` | bool | a predicate itself; `and`, `or`, `!` |
//!
//! Every handle converts into an [`Expr`] (so it mixes freely with `col` expressions) and names
//! its column wherever the builder takes a name (`group_by`, `per_unit(..).by(..)`):
//!
//! ```
//! use oar_guest::{flag, num, text, time};
//! let (kwh, region, read_at, consent) = (num("kwh"), text("region"), time("read_at"), flag("consent"));
//! let evening = read_at.hour().ge(17).and(consent);
//! let big = kwh.gt(2.0);
//! let north = region.is_in(["North"]);
//! assert_eq!(evening.and(big).and(north).columns(), vec!["read_at", "consent", "kwh", "region"]);
//! ```
//!
//! What does not fit does not compile:
//!
//! ```compile_fail
//! use oar_guest::text;
//! let nonsense = text("region").hour(); // text has no hour
//! ```
//!
//! ```compile_fail
//! use oar_guest::num;
//! let nonsense = num("kwh").gt("North"); // a number compared with text
//! ```

use crate::expr::{IntoExpr, IntoPredicate};
use crate::plan::ArithOp;
use crate::{col, Expr, Value};
use std::marker::PhantomData;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Num {}
    impl Sealed for super::Text {}
    impl Sealed for super::Time {}
    impl Sealed for super::Flag {}
}

/// What a typed column holds: [`Num`], [`Text`], [`Time`] or [`Flag`].
///
/// ```
/// use oar_guest::{ColumnType, Kind, Num, Time};
/// assert!(Num::accepts(ColumnType::Int) && Num::accepts(ColumnType::Float));
/// assert!(Time::accepts(ColumnType::Date) && !Time::accepts(ColumnType::Str));
/// ```
pub trait Kind: sealed::Sealed {
    /// The column types a handle of this kind may name.
    const TYPES: &'static [crate::ColumnType];

    /// True if a column of type `ty` fits this kind.
    ///
    /// ```
    /// use oar_guest::{ColumnType, Flag, Kind};
    /// assert!(Flag::accepts(ColumnType::Bool));
    /// ```
    fn accepts(ty: crate::ColumnType) -> bool {
        Self::TYPES.contains(&ty)
    }
}

/// Numbers: `int` and `float` columns.
///
/// ```
/// use oar_guest::{num, Column, Num};
/// let kwh: Column<Num> = num("kwh");
/// assert_eq!(kwh.name(), "kwh");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Num {}

/// Text: `str` columns (identifiers, categories).
///
/// ```
/// use oar_guest::{text, Column, Text};
/// let region: Column<Text> = text("region");
/// assert_eq!(region.name(), "region");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Text {}

/// Points in time: `datetime` and `date` columns.
///
/// ```
/// use oar_guest::{time, Column, Time};
/// let read_at: Column<Time> = time("read_at");
/// assert_eq!(read_at.name(), "read_at");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Time {}

/// Booleans: `bool` columns, usable as predicates.
///
/// ```
/// use oar_guest::{flag, Column, Flag};
/// let consent: Column<Flag> = flag("consent");
/// assert_eq!(consent.name(), "consent");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {}

impl Kind for Num {
    const TYPES: &'static [crate::ColumnType] = &[crate::ColumnType::Int, crate::ColumnType::Float];
}
impl Kind for Text {
    const TYPES: &'static [crate::ColumnType] = &[crate::ColumnType::Str];
}
impl Kind for Time {
    const TYPES: &'static [crate::ColumnType] =
        &[crate::ColumnType::Datetime, crate::ColumnType::Date];
}
impl Kind for Flag {
    const TYPES: &'static [crate::ColumnType] = &[crate::ColumnType::Bool];
}

/// A typed handle on the column `name` (of the dataset, or derived earlier in the plan) that
/// holds values of kind `K`. Methods take `&self`, so one handle serves a whole query.
///
/// ```
/// use oar_guest::{col, num, Expr};
/// let kwh = num("kwh");
/// let e: Expr = kwh.clone().into();
/// assert_eq!(e, col("kwh"));
/// assert_eq!(kwh.gt(0.0), col("kwh").gt(0.0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Column<K> {
    name: String,
    kind: PhantomData<K>,
}

impl<K: Kind> Column<K> {
    /// A handle on column `name`, of kind `K` (usually written with [`num`], [`text`],
    /// [`time`] or [`flag`]).
    ///
    /// ```
    /// use oar_guest::{Column, Num};
    /// let occupants = Column::<Num>::new("occupants");
    /// assert_eq!(occupants.name(), "occupants");
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Column {
            name: name.into(),
            kind: PhantomData,
        }
    }

    /// The column's name.
    ///
    /// ```
    /// assert_eq!(oar_guest::text("region").name(), "region");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The untyped expression reading this column, `col(name)`.
    ///
    /// ```
    /// use oar_guest::{col, flag};
    /// assert_eq!(flag("consent").expr(), col("consent"));
    /// ```
    pub fn expr(&self) -> Expr {
        col(&self.name)
    }

    /// `self == other`.
    ///
    /// ```
    /// use oar_guest::{col, text};
    /// assert_eq!(text("region").eq("North"), col("region").eq("North"));
    /// ```
    pub fn eq(&self, other: impl Operand<K>) -> Expr {
        self.expr().eq(other.into_expr())
    }

    /// `self != other`.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("occupants").ne(1), col("occupants").ne(1));
    /// ```
    pub fn ne(&self, other: impl Operand<K>) -> Expr {
        self.expr().ne(other.into_expr())
    }
}

impl<K> AsRef<str> for Column<K> {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl<K> From<Column<K>> for Expr {
    fn from(c: Column<K>) -> Expr {
        col(&c.name)
    }
}
impl<K> From<&Column<K>> for Expr {
    fn from(c: &Column<K>) -> Expr {
        col(&c.name)
    }
}
impl<K> IntoExpr for Column<K> {
    fn into_expr(self) -> Expr {
        self.into()
    }
}
impl<K> IntoExpr for &Column<K> {
    fn into_expr(self) -> Expr {
        self.into()
    }
}

/// A typed handle on a number column (`int` or `float`).
///
/// ```
/// use oar_guest::{col, num};
/// assert_eq!(num("kwh").gt(0.5), col("kwh").gt(0.5));
/// ```
pub fn num(name: &str) -> Column<Num> {
    Column::new(name)
}

/// A typed handle on a text column (`str`).
///
/// ```
/// use oar_guest::{col, text};
/// assert_eq!(text("region").is_in(["North"]), col("region").is_in(["North"]));
/// ```
pub fn text(name: &str) -> Column<Text> {
    Column::new(name)
}

/// A typed handle on a point-in-time column (`datetime`, or `date`).
///
/// ```
/// use oar_guest::{col, time};
/// assert_eq!(time("read_at").half_hour(), col("read_at").half_hour());
/// ```
pub fn time(name: &str) -> Column<Time> {
    Column::new(name)
}

/// A typed handle on a boolean column (`bool`): a predicate itself.
///
/// ```
/// use oar_guest::{col, flag};
/// assert_eq!(!flag("on_rates_register"), !col("on_rates_register"));
/// ```
pub fn flag(name: &str) -> Column<Flag> {
    Column::new(name)
}

/// What may stand on the other side of an operator with a `Column<K>`: a value of the kind
/// (a number for [`Num`], a string for [`Text`], a `"YYYY-MM-DD"` or `"YYYY-MM-DDTHH:MM:SS"`
/// string for [`Time`], a `bool` for [`Flag`]), another `Column<K>`, or any untyped [`Expr`].
///
/// ```
/// use oar_guest::{num, IntoExpr, Num, Operand};
/// fn at_least(x: impl Operand<Num>) -> oar_guest::Expr { num("kwh").ge(x) }
/// assert_eq!(at_least(1).columns(), vec!["kwh"]);
/// assert_eq!(at_least(num("baseline")).columns(), vec!["kwh", "baseline"]);
/// ```
pub trait Operand<K: Kind>: IntoExpr {}

/// A plain value of kind `K`, for `is_in` lists: `i64`, `i32` or `f64` for [`Num`]; `&str` or
/// `String` for [`Text`].
///
/// ```
/// use oar_guest::{Literal, Num, Value};
/// fn as_value(x: impl Literal<Num>) -> Value { x.into() }
/// assert_eq!(as_value(3), Value::Int(3));
/// ```
pub trait Literal<K: Kind>: Into<Value> {}

macro_rules! kind_values {
    ($kind:ty: $($t:ty),*) => {$(
        impl Operand<$kind> for $t {}
    )*};
}
kind_values!(Num: i64, i32, f64);
kind_values!(Text: &str, String);
kind_values!(Time: &str, String);
kind_values!(Flag: bool);
impl Literal<Num> for i64 {}
impl Literal<Num> for i32 {}
impl Literal<Num> for f64 {}
impl Literal<Text> for &str {}
impl Literal<Text> for String {}
impl<K: Kind> Operand<K> for Expr {}
impl<K: Kind> Operand<K> for Column<K> {}
impl<K: Kind> Operand<K> for &Column<K> {}

/// Names of columns of kind `K`, where the builder takes a column name (`sum`, `mean`,
/// `quantile`): a typed [`Column<K>`], or a plain name (`&str`, `String`), which is checked
/// against the schema at release instead.
///
/// ```
/// use oar_guest::{num, ColumnRef, Num};
/// fn name_of(c: impl ColumnRef<Num>) -> String { c.column_name() }
/// assert_eq!(name_of(num("kwh")), "kwh");
/// assert_eq!(name_of("kwh"), "kwh");
/// ```
pub trait ColumnRef<K: Kind> {
    /// The column's name.
    ///
    /// ```
    /// use oar_guest::{num, ColumnRef, Num};
    /// assert_eq!(ColumnRef::<Num>::column_name(&num("kwh")), "kwh");
    /// ```
    fn column_name(self) -> String;
}
impl<K: Kind> ColumnRef<K> for &str {
    fn column_name(self) -> String {
        self.to_string()
    }
}
impl<K: Kind> ColumnRef<K> for String {
    fn column_name(self) -> String {
        self
    }
}
impl<K: Kind> ColumnRef<K> for &String {
    fn column_name(self) -> String {
        self.clone()
    }
}
impl<K: Kind> ColumnRef<K> for Column<K> {
    fn column_name(self) -> String {
        self.name
    }
}
impl<K: Kind> ColumnRef<K> for &Column<K> {
    fn column_name(self) -> String {
        self.name.clone()
    }
}

impl Column<Num> {
    /// `self < other`.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("kwh").lt(num("baseline")), col("kwh").lt(col("baseline")));
    /// ```
    pub fn lt(&self, other: impl Operand<Num>) -> Expr {
        self.expr().lt(other.into_expr())
    }
    /// `self <= other`.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("kwh").le(2.0), col("kwh").le(2.0));
    /// ```
    pub fn le(&self, other: impl Operand<Num>) -> Expr {
        self.expr().le(other.into_expr())
    }
    /// `self > other`.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("kwh").gt(0), col("kwh").gt(0));
    /// ```
    pub fn gt(&self, other: impl Operand<Num>) -> Expr {
        self.expr().gt(other.into_expr())
    }
    /// `self >= other`.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("occupants").ge(3), col("occupants").ge(3));
    /// ```
    pub fn ge(&self, other: impl Operand<Num>) -> Expr {
        self.expr().ge(other.into_expr())
    }
    /// True where the value is one of `values` (give integers for an `int` column).
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("occupants").is_in([1, 2]), col("occupants").is_in([1, 2]));
    /// ```
    pub fn is_in<V: Literal<Num>>(&self, values: impl IntoIterator<Item = V>) -> Expr {
        self.expr().is_in(values)
    }
    /// The bin of the value as a key `"[lo, hi)"`, for histograms over declared bins.
    ///
    /// ```
    /// use oar_guest::{col, num};
    /// assert_eq!(num("kwh").bin([0.0, 1.0, 5.0]), col("kwh").bin([0.0, 1.0, 5.0]));
    /// ```
    pub fn bin(&self, edges: impl IntoIterator<Item = f64>) -> Expr {
        self.expr().bin(edges)
    }
}

macro_rules! num_operator {
    ($($trait:ident $method:ident $op:ident),*) => {$(
        /// Arithmetic on a number column: `num("kwh") * 2.0`, `&kwh - num("baseline")`.
        impl<R: Operand<Num>> std::ops::$trait<R> for Column<Num> {
            type Output = Expr;
            fn $method(self, other: R) -> Expr {
                self.expr().arith(ArithOp::$op, other)
            }
        }
        /// Arithmetic on a borrowed number column, leaving the handle usable.
        impl<R: Operand<Num>> std::ops::$trait<R> for &Column<Num> {
            type Output = Expr;
            fn $method(self, other: R) -> Expr {
                self.expr().arith(ArithOp::$op, other)
            }
        }
    )*};
}
num_operator!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div);

impl Column<Text> {
    /// True where the value is one of `values`.
    ///
    /// ```
    /// use oar_guest::{col, text};
    /// let tariffs = vec!["day".to_string(), "night".to_string()];
    /// assert_eq!(text("tariff").is_in(tariffs), col("tariff").is_in(["day", "night"]));
    /// ```
    pub fn is_in<V: Literal<Text>>(&self, values: impl IntoIterator<Item = V>) -> Expr {
        self.expr().is_in(values)
    }
}

impl Column<Time> {
    /// The calendar day (`YYYY-MM-DD`): a key whose domain is the column's declared period.
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("timestamp").date(), col("timestamp").date());
    /// ```
    pub fn date(&self) -> Expr {
        self.expr().date()
    }
    /// The hour of day, 0 to 23 (datetime columns).
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("timestamp").hour().lt(6), col("timestamp").hour().lt(6));
    /// ```
    pub fn hour(&self) -> Expr {
        self.expr().hour()
    }
    /// The half-hour of day, 0 to 47 (datetime columns).
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("read_at").half_hour(), col("read_at").half_hour());
    /// ```
    pub fn half_hour(&self) -> Expr {
        self.expr().half_hour()
    }
    /// `self < other` (before a date `"YYYY-MM-DD"`, a datetime or another time column).
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("read_at").lt("2024-01-15"), col("read_at").lt("2024-01-15"));
    /// ```
    pub fn lt(&self, other: impl Operand<Time>) -> Expr {
        self.expr().lt(other.into_expr())
    }
    /// `self <= other`.
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("read_at").le("2024-01-15"), col("read_at").le("2024-01-15"));
    /// ```
    pub fn le(&self, other: impl Operand<Time>) -> Expr {
        self.expr().le(other.into_expr())
    }
    /// `self > other`.
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("read_at").gt("2024-01-15"), col("read_at").gt("2024-01-15"));
    /// ```
    pub fn gt(&self, other: impl Operand<Time>) -> Expr {
        self.expr().gt(other.into_expr())
    }
    /// `self >= other`.
    ///
    /// ```
    /// use oar_guest::{col, time};
    /// assert_eq!(time("read_at").ge("2024-01-15"), col("read_at").ge("2024-01-15"));
    /// ```
    pub fn ge(&self, other: impl Operand<Time>) -> Expr {
        self.expr().ge(other.into_expr())
    }
}

impl Column<Flag> {
    /// Both this flag and `other`.
    ///
    /// ```
    /// use oar_guest::{col, flag};
    /// let e = flag("consent").and(col("kwh").gt(0.0));
    /// assert_eq!(e, col("consent").and(col("kwh").gt(0.0)));
    /// ```
    pub fn and(&self, other: impl IntoPredicate) -> Expr {
        self.expr().and(other)
    }
    /// This flag or `other`.
    ///
    /// ```
    /// use oar_guest::{col, flag};
    /// let active = flag("waste_contract").or(flag("utility_connection"));
    /// assert_eq!(active, col("waste_contract").or(col("utility_connection")));
    /// ```
    pub fn or(&self, other: impl IntoPredicate) -> Expr {
        self.expr().or(other)
    }
}

impl IntoPredicate for Column<Flag> {
    fn into_predicate(self) -> Expr {
        self.into()
    }
}
impl IntoPredicate for &Column<Flag> {
    fn into_predicate(self) -> Expr {
        self.into()
    }
}

/// Negation of a flag: `!flag("on_rates_register")`.
impl std::ops::Not for Column<Flag> {
    type Output = Expr;
    fn not(self) -> Expr {
        !self.expr()
    }
}
/// Negation of a borrowed flag, leaving the handle usable.
impl std::ops::Not for &Column<Flag> {
    type Output = Expr;
    fn not(self) -> Expr {
        !self.expr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lit;

    #[test]
    fn typed_handles_build_the_same_plan_nodes_as_col() {
        let kwh = num("kwh");
        assert_eq!(&kwh * 2.0 + 1, (col("kwh") * 2.0) + 1);
        assert_eq!(kwh.clone() - &kwh, col("kwh") - col("kwh"));
        assert_eq!(kwh.eq(num("baseline")), col("kwh").eq(col("baseline")));
        assert_eq!(
            time("read_at").ge("2024-01-01").and(flag("consent")),
            col("read_at").ge("2024-01-01").and(col("consent"))
        );
        assert_eq!(!&flag("ok"), !col("ok"));
        assert_eq!(text("r").ne(lit("x")), col("r").ne("x"));
    }

    #[test]
    fn a_handle_names_its_column_where_names_are_taken() {
        let region = text("region");
        let keys: Vec<&str> = [&region].into_iter().map(|k| k.as_ref()).collect();
        assert_eq!(keys, ["region"]);
        assert_eq!(ColumnRef::<Num>::column_name(num("kwh")), "kwh");
        let owned = String::from("kwh");
        assert_eq!(ColumnRef::<Num>::column_name(&owned), "kwh");
        assert_eq!(ColumnRef::<Num>::column_name(owned), "kwh");
    }
}
