//! Quantities with UN/ECE Recommendation 20 unit codes, and bounded numbers.
//!
//! Mass units convert into each other (through the kilogram); every other unit must match exactly.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The largest amount accepted anywhere, so that sums and conversions stay finite and exact
/// enough.
pub const MAX_AMOUNT: f64 = 1e15;

macro_rules! bounded_number {
    ($(#[$doc:meta])* $name:ident, $check:expr, $schema:tt, $refusal:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
        #[serde(try_from = "f64", into = "f64")]
        pub struct $name(f64);

        impl $name {
            pub fn new(value: f64) -> Result<Self, String> {
                let accepted: fn(f64) -> bool = $check;
                if value.is_finite() && accepted(value) {
                    Ok(Self(value))
                } else {
                    Err(format!("{value} is out of range: {}", $refusal))
                }
            }
            pub fn get(self) -> f64 {
                self.0
            }
        }

        impl TryFrom<f64> for $name {
            type Error = String;
            fn try_from(value: f64) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for f64 {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

bounded_number!(
    /// A non-negative amount, at most 10^15.
    Amount,
    |v| (0.0..=MAX_AMOUNT).contains(&v),
    { "type": "number", "minimum": 0, "maximum": MAX_AMOUNT },
    "expected a number from 0 to 1e15"
);

bounded_number!(
    /// A strictly positive amount, at most 10^15.
    PositiveAmount,
    |v| v > 0.0 && v <= MAX_AMOUNT,
    { "type": "number", "exclusiveMinimum": 0, "maximum": MAX_AMOUNT },
    "expected a number greater than 0 and at most 1e15"
);

bounded_number!(
    /// A share between 0 and 1 inclusive.
    Fraction,
    |v| (0.0..=1.0).contains(&v),
    { "type": "number", "minimum": 0, "maximum": 1 },
    "expected a share from 0 to 1"
);

/// What a unit measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dimension {
    Mass,
    Count,
    Volume,
    Length,
    Area,
    Energy,
}

/// A unit of measure, by its UN/ECE Recommendation 20 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Unit {
    /// kilogram
    #[serde(rename = "KGM")]
    Kilogram,
    /// gram
    #[serde(rename = "GRM")]
    Gram,
    /// milligram
    #[serde(rename = "MGM")]
    Milligram,
    /// tonne (metric ton)
    #[serde(rename = "TNE")]
    Tonne,
    /// pound
    #[serde(rename = "LBR")]
    Pound,
    /// piece
    #[serde(rename = "H87")]
    Piece,
    /// one (unit count)
    #[serde(rename = "C62")]
    One,
    /// set
    #[serde(rename = "SET")]
    Set,
    /// litre
    #[serde(rename = "LTR")]
    Litre,
    /// millilitre
    #[serde(rename = "MLT")]
    Millilitre,
    /// cubic metre
    #[serde(rename = "MTQ")]
    CubicMetre,
    /// metre
    #[serde(rename = "MTR")]
    Metre,
    /// square metre
    #[serde(rename = "MTK")]
    SquareMetre,
    /// kilowatt hour
    #[serde(rename = "KWH")]
    KilowattHour,
}

impl Unit {
    pub fn code(self) -> &'static str {
        match self {
            Self::Kilogram => "KGM",
            Self::Gram => "GRM",
            Self::Milligram => "MGM",
            Self::Tonne => "TNE",
            Self::Pound => "LBR",
            Self::Piece => "H87",
            Self::One => "C62",
            Self::Set => "SET",
            Self::Litre => "LTR",
            Self::Millilitre => "MLT",
            Self::CubicMetre => "MTQ",
            Self::Metre => "MTR",
            Self::SquareMetre => "MTK",
            Self::KilowattHour => "KWH",
        }
    }

    /// The unit in words, as people read it after an amount (`12 kg`, `20 pieces`).
    pub fn words(self) -> &'static str {
        match self {
            Self::Kilogram => "kg",
            Self::Gram => "g",
            Self::Milligram => "mg",
            Self::Tonne => "t",
            Self::Pound => "lb",
            Self::Piece => "pieces",
            Self::One => "units",
            Self::Set => "sets",
            Self::Litre => "litres",
            Self::Millilitre => "millilitres",
            Self::CubicMetre => "cubic metres",
            Self::Metre => "metres",
            Self::SquareMetre => "square metres",
            Self::KilowattHour => "kWh",
        }
    }

    /// The unit of a Recommendation 20 code this type knows.
    pub fn from_code(code: &str) -> Option<Unit> {
        Some(match code {
            "KGM" => Self::Kilogram,
            "GRM" => Self::Gram,
            "MGM" => Self::Milligram,
            "TNE" => Self::Tonne,
            "LBR" => Self::Pound,
            "H87" => Self::Piece,
            "C62" => Self::One,
            "SET" => Self::Set,
            "LTR" => Self::Litre,
            "MLT" => Self::Millilitre,
            "MTQ" => Self::CubicMetre,
            "MTR" => Self::Metre,
            "MTK" => Self::SquareMetre,
            "KWH" => Self::KilowattHour,
            _ => return None,
        })
    }

    pub fn dimension(self) -> Dimension {
        match self {
            Self::Kilogram | Self::Gram | Self::Milligram | Self::Tonne | Self::Pound => {
                Dimension::Mass
            }
            Self::Piece | Self::One | Self::Set => Dimension::Count,
            Self::Litre | Self::Millilitre | Self::CubicMetre => Dimension::Volume,
            Self::Metre => Dimension::Length,
            Self::SquareMetre => Dimension::Area,
            Self::KilowattHour => Dimension::Energy,
        }
    }

    /// The unit amounts of this unit are compared in, and the factor into it: the kilogram for
    /// mass units, the unit itself otherwise.
    pub fn base(self) -> (Unit, f64) {
        match self {
            Self::Gram => (Self::Kilogram, 1e-3),
            Self::Milligram => (Self::Kilogram, 1e-6),
            Self::Tonne => (Self::Kilogram, 1e3),
            Self::Pound => (Self::Kilogram, 0.453_592_37),
            other => (other, 1.0),
        }
    }
}

/// An amount of something, in a unit: `{"amount": 12.5, "unit": "KGM"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub amount: PositiveAmount,
    pub unit: Unit,
}

impl Quantity {
    pub fn measure(&self) -> Measure {
        let (unit, factor) = self.unit.base();
        Measure {
            amount: self.amount.get() * factor,
            unit,
        }
    }
}

/// An amount in the base unit of its dimension (kilograms for mass), for comparisons and sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measure {
    pub amount: f64,
    pub unit: Unit,
}

/// A mass unit, by its UN/ECE Recommendation 20 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MassUnit {
    #[serde(rename = "KGM")]
    Kilogram,
    #[serde(rename = "GRM")]
    Gram,
    #[serde(rename = "MGM")]
    Milligram,
    #[serde(rename = "TNE")]
    Tonne,
    #[serde(rename = "LBR")]
    Pound,
}

impl From<MassUnit> for Unit {
    fn from(value: MassUnit) -> Self {
        match value {
            MassUnit::Kilogram => Unit::Kilogram,
            MassUnit::Gram => Unit::Gram,
            MassUnit::Milligram => Unit::Milligram,
            MassUnit::Tonne => Unit::Tonne,
            MassUnit::Pound => Unit::Pound,
        }
    }
}

/// A mass: `{"amount": 3.2, "unit": "KGM"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MassQuantity {
    pub amount: PositiveAmount,
    pub unit: MassUnit,
}

impl MassQuantity {
    pub fn kilograms(&self) -> f64 {
        Quantity {
            amount: self.amount,
            unit: self.unit.into(),
        }
        .measure()
        .amount
    }
}

/// An energy unit, by its UN/ECE Recommendation 20 code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EnergyUnit {
    /// kilowatt hour
    #[serde(rename = "KWH")]
    KilowattHour,
    /// megawatt hour
    #[serde(rename = "MWH")]
    MegawattHour,
    /// megajoule
    #[serde(rename = "3B")]
    Megajoule,
}

impl EnergyUnit {
    /// Kilowatt hours in one of this unit.
    pub fn kilowatt_hours(self) -> f64 {
        match self {
            Self::KilowattHour => 1.0,
            Self::MegawattHour => 1000.0,
            Self::Megajoule => 1.0 / 3.6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mass_units_convert_through_the_kilogram() {
        let q = |amount, unit| {
            Quantity {
                amount: PositiveAmount(amount),
                unit,
            }
            .measure()
        };
        assert_eq!(
            q(2.0, Unit::Tonne),
            Measure {
                amount: 2000.0,
                unit: Unit::Kilogram
            }
        );
        assert_eq!(
            q(500.0, Unit::Gram),
            Measure {
                amount: 0.5,
                unit: Unit::Kilogram
            }
        );
        assert_eq!(
            q(3.0, Unit::Piece),
            Measure {
                amount: 3.0,
                unit: Unit::Piece
            }
        );
        assert_ne!(q(1.0, Unit::Litre).unit, q(1.0, Unit::Millilitre).unit);
    }

    #[test]
    fn bounded_numbers_refuse_what_they_do_not_hold() {
        assert!(PositiveAmount::new(0.0).is_err());
        assert!(Amount::new(0.0).is_ok());
        assert!(Amount::new(-0.1).is_err());
        assert!(Amount::new(f64::NAN).is_err());
        assert!(Fraction::new(1.0000001).is_err());
        assert!(PositiveAmount::new(2e15).is_err());
    }
}
