//! A makerspace's price table: what each material costs, what an hour of each kind of
//! machine costs, a setup fee per job, the time factor of each quality level, and what an
//! unsliced model needs to be estimated (how much of its volume becomes plastic, how fast a
//! printer lays it down, how fast a laser cuts).
//!
//! Prices are decimals in the currency's major unit (`0.05` per gram, `2.5` per hour): the
//! way a price list reads. They become integer minor units only when a quote's line is made
//! (see [`super::quote`]). [`PriceTableSpec`] is what an admin writes; [`PriceTable`] is one
//! that passed every check, the only kind a quote is made from.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::rate::Rate;
use crate::domain::currency::minor_digits;
use crate::domain::equipment::EquipmentType;
use crate::domain::validate::{check_len, Invalid};

/// Most materials one table lists.
pub const MAX_MATERIALS: usize = 100;
/// Longest material name, in characters.
pub const MAX_MATERIAL_LEN: usize = 40;

// serde reads a struct from an array of its fields in order as well as from an object. A
// table is written as objects only (the document says so, and an array of bare numbers is
// no price list anyone can read), so its parts are read from objects only.

fn from_object<T: DeserializeOwned, E: serde::de::Error>(object: Map<String, Value>) -> Result<T, E> {
    T::deserialize(Value::Object(object)).map_err(E::custom)
}

fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<T, D::Error> {
    from_object(Map::deserialize(deserializer)?)
}

fn optional_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    Option::<Map<String, Value>>::deserialize(deserializer)?.map(from_object).transpose()
}

fn objects<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<Vec<T>, D::Error> {
    Vec::<Map<String, Value>>::deserialize(deserializer)?.into_iter().map(from_object).collect()
}

/// The kinds of printers that use up a material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
pub enum PrinterType {
    #[default]
    #[serde(rename = "3d_printer")]
    Printer3d,
    #[serde(rename = "sla_printer")]
    SlaPrinter,
}

impl PrinterType {
    pub fn equipment_type(self) -> EquipmentType {
        match self {
            Self::Printer3d => EquipmentType::Printer3d,
            Self::SlaPrinter => EquipmentType::SlaPrinter,
        }
    }
}

/// What one material costs. Exactly one of `price_per_gram` and `price_per_cm3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaterialPrice {
    /// PLA, PETG, ABS, TPU, Standard resin, ...: unique in the table, whatever the case. A
    /// sliced file's material is matched against it, case aside.
    #[schema(min_length = 1, max_length = 40, pattern = r"^[A-Za-z0-9][A-Za-z0-9 +._-]*$")]
    pub material: String,
    /// The printers it is for [default: 3d_printer].
    #[serde(default)]
    pub equipment_type: PrinterType,
    /// Price of a gram, in the currency's major unit (0.05 is five cents a gram in EUR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000, multiple_of = 0.000001)]
    pub price_per_gram: Option<Rate>,
    /// Price of a cubic centimetre (a millilitre of resin), in the currency's major unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 1000, multiple_of = 0.000001)]
    pub price_per_cm3: Option<Rate>,
    /// Grams per cm³: turns a model's volume into grams, and grams into cm³ for a price per
    /// cm³. Usual figures: PLA 1.24, PETG 1.27, ABS 1.04, TPU 1.21, resins about 1.1.
    #[schema(value_type = f64, minimum = 0.1, maximum = 30, multiple_of = 0.000001)]
    pub density_g_cm3: Rate,
}

/// A printer's hour, and how an unsliced model's print is estimated on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrinterRates {
    /// Price of an hour of machine time, in the currency's major unit.
    #[schema(value_type = f64, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub rate_per_hour: Rate,
    /// The share of a model's volume that becomes material (walls, infill, supports): 0.35
    /// for a usual FDM print, near 1 for resin.
    #[schema(value_type = f64, exclusive_minimum = 0, maximum = 1, multiple_of = 0.000001)]
    pub fill_fraction: Rate,
    /// Cubic centimetres of material laid down per hour at standard quality.
    #[schema(value_type = f64, minimum = 0.1, maximum = 10000, multiple_of = 0.000001)]
    pub deposition_cm3_per_hour: Rate,
}

/// A laser cutter's hour, and how fast it cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaserRates {
    /// Price of an hour of machine time, in the currency's major unit.
    #[schema(value_type = f64, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub rate_per_hour: Rate,
    /// Millimetres of cut path per second at standard quality: a job's time is its path's
    /// length over this speed, times the quality's factor.
    #[schema(value_type = f64, minimum = 0.1, maximum = 10000, multiple_of = 0.000001)]
    pub cutting_speed_mm_s: Rate,
}

/// A machine priced by its time alone (a CNC machine: its CAM gives the time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeRate {
    /// Price of an hour of machine time, in the currency's major unit.
    #[schema(value_type = f64, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub rate_per_hour: Rate,
}

/// The kinds of machines the makerspace prices; a kind left out cannot be quoted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineRates {
    #[serde(
        rename = "3d_printer",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_object"
    )]
    pub printer_3d: Option<PrinterRates>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_object")]
    pub sla_printer: Option<PrinterRates>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_object")]
    pub laser_cutter: Option<LaserRates>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "optional_object")]
    pub cnc_machine: Option<TimeRate>,
}

/// The time factor of each quality level: a print at `fine` takes `fine` times as long as at
/// `standard` (a laser's quality is its speed: the same factor applies to its time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityFactors {
    #[schema(value_type = f64, minimum = 0.1, maximum = 10, multiple_of = 0.000001)]
    pub draft: Rate,
    #[schema(value_type = f64, minimum = 0.1, maximum = 10, multiple_of = 0.000001)]
    pub standard: Rate,
    #[schema(value_type = f64, minimum = 0.1, maximum = 10, multiple_of = 0.000001)]
    pub fine: Rate,
}

/// A price table as an admin writes it (the body of `PUT .../price-table`, and what is
/// stored). [`PriceTable::new`] checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTableSpec {
    /// Each material's price and density; names unique whatever their case.
    #[schema(max_items = 100)]
    #[serde(deserialize_with = "objects")]
    pub materials: Vec<MaterialPrice>,
    #[serde(deserialize_with = "object")]
    pub machines: MachineRates,
    /// Charged once per job, in the currency's major unit.
    #[schema(value_type = f64, minimum = 0, maximum = 100000, multiple_of = 0.000001)]
    pub setup_fee: Rate,
    #[serde(deserialize_with = "object")]
    pub qualities: QualityFactors,
}

/// A price table that passed its checks ([`PriceTable::new`]); reading one (from storage,
/// say) checks it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PriceTableSpec", into = "PriceTableSpec")]
pub struct PriceTable(PriceTableSpec);

impl TryFrom<PriceTableSpec> for PriceTable {
    type Error = Invalid;
    fn try_from(spec: PriceTableSpec) -> Result<PriceTable, Invalid> {
        PriceTable::new(spec)
    }
}

impl From<PriceTable> for PriceTableSpec {
    fn from(table: PriceTable) -> PriceTableSpec {
        table.0
    }
}

/// Inclusive or exclusive lower bound of a number.
#[derive(Clone, Copy)]
enum Low {
    AtLeast(Rate),
    MoreThan(Rate),
}

fn check_range(field: &str, value: Rate, low: Low, high: Rate) -> Result<(), Invalid> {
    let (fits, range) = match low {
        Low::AtLeast(min) => (value >= min && value <= high, format!("from {min} to {high}")),
        Low::MoreThan(min) => (value > min && value <= high, format!("more than {min} and at most {high}")),
    };
    if fits {
        Ok(())
    } else {
        Err(Invalid(format!("{field} must be {range}")))
    }
}

const PRICE_PER_UNIT: (Low, Rate) = (Low::AtLeast(Rate::ZERO), Rate::whole(1000));
const RATE_PER_HOUR: (Low, Rate) = (Low::AtLeast(Rate::ZERO), Rate::whole(100_000));
const SETUP_FEE: (Low, Rate) = (Low::AtLeast(Rate::ZERO), Rate::whole(100_000));
const DENSITY: (Low, Rate) = (Low::AtLeast(Rate::tenths(1)), Rate::whole(30));
const FILL_FRACTION: (Low, Rate) = (Low::MoreThan(Rate::ZERO), Rate::whole(1));
const SPEED: (Low, Rate) = (Low::AtLeast(Rate::tenths(1)), Rate::whole(10_000));
const QUALITY_FACTOR: (Low, Rate) = (Low::AtLeast(Rate::tenths(1)), Rate::whole(10));

fn check(field: &str, value: Rate, (low, high): (Low, Rate)) -> Result<(), Invalid> {
    check_range(field, value, low, high)
}

/// The characters of a material's name, as the schema's pattern says.
fn is_material_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || " +._-".contains(c))
}

fn check_material(index: usize, material: &mut MaterialPrice) -> Result<(), Invalid> {
    let field = |name: &str| format!("materials[{index}].{name}");
    check_len(&field("material"), &material.material, MAX_MATERIAL_LEN)?;
    if !is_material_name(&material.material) {
        return Err(Invalid(format!(
            "{} must start with a letter or digit and hold only letters, digits, spaces and + . _ -",
            field("material")
        )));
    }
    match (material.price_per_gram, material.price_per_cm3) {
        (Some(price), None) => check(&field("price_per_gram"), price, PRICE_PER_UNIT)?,
        (None, Some(price)) => check(&field("price_per_cm3"), price, PRICE_PER_UNIT)?,
        _ => {
            return Err(Invalid(format!(
                "materials[{index}] ({}) must have exactly one of price_per_gram and price_per_cm3",
                material.material
            )))
        }
    }
    check(&field("density_g_cm3"), material.density_g_cm3, DENSITY)?;
    // The pattern lets trailing spaces through; they mean nothing.
    material.material.truncate(material.material.trim_end().len());
    Ok(())
}

fn check_printer(name: &str, rates: &PrinterRates) -> Result<(), Invalid> {
    check(&format!("machines.{name}.rate_per_hour"), rates.rate_per_hour, RATE_PER_HOUR)?;
    check(&format!("machines.{name}.fill_fraction"), rates.fill_fraction, FILL_FRACTION)?;
    check(&format!("machines.{name}.deposition_cm3_per_hour"), rates.deposition_cm3_per_hour, SPEED)
}

fn check_machines(machines: &MachineRates) -> Result<(), Invalid> {
    if let Some(rates) = &machines.printer_3d {
        check_printer("3d_printer", rates)?;
    }
    if let Some(rates) = &machines.sla_printer {
        check_printer("sla_printer", rates)?;
    }
    if let Some(rates) = &machines.laser_cutter {
        check("machines.laser_cutter.rate_per_hour", rates.rate_per_hour, RATE_PER_HOUR)?;
        check("machines.laser_cutter.cutting_speed_mm_s", rates.cutting_speed_mm_s, SPEED)?;
    }
    if let Some(rates) = &machines.cnc_machine {
        check("machines.cnc_machine.rate_per_hour", rates.rate_per_hour, RATE_PER_HOUR)?;
    }
    Ok(())
}

impl PriceTable {
    /// Checks a table: at most [`MAX_MATERIALS`] materials, named uniquely whatever the case,
    /// each with exactly one price; every number within its bounds (prices and fees from 0,
    /// densities 0.1 to 30 g/cm³, fill fractions more than 0 and at most 1, speeds 0.1 to
    /// 10,000, quality factors 0.1 to 10). Trailing spaces of names are dropped.
    pub fn new(mut spec: PriceTableSpec) -> Result<PriceTable, Invalid> {
        if spec.materials.len() > MAX_MATERIALS {
            return Err(Invalid(format!("materials must list at most {MAX_MATERIALS} materials")));
        }
        let mut seen = HashSet::new();
        for (index, material) in spec.materials.iter_mut().enumerate() {
            check_material(index, material)?;
            if !seen.insert(material.material.to_lowercase()) {
                return Err(Invalid(format!(
                    "materials[{index}]: {} is listed twice (names are compared whatever their case)",
                    material.material
                )));
            }
        }
        check_machines(&spec.machines)?;
        check("setup_fee", spec.setup_fee, SETUP_FEE)?;
        let qualities = &spec.qualities;
        check("qualities.draft", qualities.draft, QUALITY_FACTOR)?;
        check("qualities.standard", qualities.standard, QUALITY_FACTOR)?;
        check("qualities.fine", qualities.fine, QUALITY_FACTOR)?;
        Ok(PriceTable(spec))
    }

    /// The table as written.
    pub fn spec(&self) -> &PriceTableSpec {
        &self.0
    }

    /// The materials a printer of `kind` uses, in the table's order.
    pub fn materials_for(&self, kind: PrinterType) -> impl Iterator<Item = &MaterialPrice> {
        self.0.materials.iter().filter(move |m| m.equipment_type == kind)
    }

    /// The table a makerspace quotes from until its admins write their own: placeholder
    /// prices (five hundredths of the major unit a gram of PLA, two units an hour of a 3D
    /// printer, ...), scaled to the currency's minor unit so that a yen table is not priced
    /// in hundredths of a yen.
    pub fn default_for(currency: &str) -> PriceTable {
        let digits = minor_digits(currency);
        // An amount in minor units, in major units of this currency.
        let minor = |units: i64| Rate::new(units, digits).unwrap_or(Rate::ZERO);
        let material = |name: &str, kind, per_gram: Option<i64>, per_cm3: Option<i64>, density: u32| MaterialPrice {
            material: name.to_string(),
            equipment_type: kind,
            price_per_gram: per_gram.map(minor),
            price_per_cm3: per_cm3.map(minor),
            density_g_cm3: Rate::hundredths(density),
        };
        use PrinterType::{Printer3d, SlaPrinter};
        PriceTable(PriceTableSpec {
            materials: vec![
                material("PLA", Printer3d, Some(5), None, 124),
                material("PETG", Printer3d, Some(6), None, 127),
                material("ABS", Printer3d, Some(6), None, 104),
                material("TPU", Printer3d, Some(10), None, 121),
                material("Standard resin", SlaPrinter, None, Some(15), 110),
            ],
            machines: MachineRates {
                printer_3d: Some(PrinterRates {
                    rate_per_hour: minor(200),
                    fill_fraction: Rate::hundredths(35),
                    deposition_cm3_per_hour: Rate::whole(10),
                }),
                sla_printer: Some(PrinterRates {
                    rate_per_hour: minor(300),
                    fill_fraction: Rate::whole(1),
                    deposition_cm3_per_hour: Rate::whole(30),
                }),
                laser_cutter: Some(LaserRates { rate_per_hour: minor(3000), cutting_speed_mm_s: Rate::whole(15) }),
                cnc_machine: Some(TimeRate { rate_per_hour: minor(4000) }),
            },
            setup_fee: minor(200),
            qualities: QualityFactors {
                draft: Rate::hundredths(75),
                standard: Rate::whole(1),
                fine: Rate::hundredths(150),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PriceTableSpec {
        PriceTable::default_for("EUR").spec().clone()
    }

    fn refused(spec: PriceTableSpec) -> String {
        PriceTable::new(spec).unwrap_err().0
    }

    #[test]
    fn default_tables_pass_their_own_checks_in_every_kind_of_currency() {
        for currency in ["EUR", "USD", "JPY", "KWD", "CLF"] {
            let table = PriceTable::default_for(currency);
            assert_eq!(PriceTable::new(table.spec().clone()), Ok(table.clone()), "{currency}");
        }
        let pla = |currency| PriceTable::default_for(currency).spec().materials[0].price_per_gram;
        assert_eq!(pla("EUR"), Rate::new(5, 2));
        assert_eq!(pla("JPY"), Rate::new(5, 0));
        assert_eq!(pla("KWD"), Rate::new(5, 3));
    }

    #[test]
    fn material_names_are_unique_whatever_their_case() {
        let mut twice = spec();
        let mut copy = twice.materials[0].clone();
        copy.material = "pla ".into();
        twice.materials.push(copy);
        assert_eq!(refused(twice), "materials[5]: pla is listed twice (names are compared whatever their case)");

        let mut trimmed = spec();
        trimmed.materials[0].material = "PLA+  ".into();
        assert_eq!(PriceTable::new(trimmed).unwrap().spec().materials[0].material, "PLA+");
    }

    #[test]
    fn a_material_has_exactly_one_price_and_a_sensible_name() {
        let mut both = spec();
        both.materials[0].price_per_cm3 = Rate::new(1, 1);
        assert!(refused(both).contains("exactly one of price_per_gram and price_per_cm3"));
        let mut none = spec();
        none.materials[0].price_per_gram = None;
        assert!(refused(none).contains("exactly one"));
        for bad in ["", "   ", " PLA", "-PLA", "PLA/PHA", "P\u{7}LA", &"x".repeat(41)] {
            let mut named = spec();
            named.materials[0].material = bad.to_string();
            assert!(refused(named).starts_with("materials[0].material"), "{bad:?}");
        }
    }

    #[test]
    fn numbers_out_of_their_bounds_are_refused_with_their_field() {
        /// A change that breaks one bound.
        type Change = fn(&mut PriceTableSpec);
        let cases: [(&str, Change); 7] = [
            ("materials[1].price_per_gram must be from 0 to 1000", |s| {
                s.materials[1].price_per_gram = Rate::new(-1, 2)
            }),
            ("materials[0].density_g_cm3 must be from 0.1 to 30", |s| {
                s.materials[0].density_g_cm3 = Rate::new(5, 2).unwrap()
            }),
            ("machines.3d_printer.fill_fraction must be more than 0 and at most 1", |s| {
                s.machines.printer_3d.as_mut().unwrap().fill_fraction = Rate::ZERO
            }),
            ("machines.sla_printer.rate_per_hour must be from 0 to 100000", |s| {
                s.machines.sla_printer.as_mut().unwrap().rate_per_hour = Rate::new(100_001, 0).unwrap()
            }),
            ("machines.laser_cutter.cutting_speed_mm_s must be from 0.1 to 10000", |s| {
                s.machines.laser_cutter.as_mut().unwrap().cutting_speed_mm_s = Rate::ZERO
            }),
            ("setup_fee must be from 0 to 100000", |s| s.setup_fee = Rate::new(-1, 0).unwrap()),
            ("qualities.fine must be from 0.1 to 10", |s| s.qualities.fine = Rate::new(11, 0).unwrap()),
        ];
        for (message, change) in cases {
            let mut spec = spec();
            change(&mut spec);
            assert_eq!(refused(spec), message);
        }
    }

    #[test]
    fn reading_a_table_checks_it() {
        let mut json = serde_json::to_value(PriceTable::default_for("EUR")).unwrap();
        let table: PriceTable = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(table, PriceTable::default_for("EUR"));
        json["qualities"]["draft"] = serde_json::json!(0);
        assert!(serde_json::from_value::<PriceTable>(json).is_err());
    }

    #[test]
    fn its_parts_are_objects_not_arrays_of_their_fields() {
        let json = serde_json::to_value(PriceTable::default_for("EUR")).unwrap();
        for (pointer, array) in [
            ("/machines", serde_json::json!([null, null])),
            ("/machines/3d_printer", serde_json::json!([1, 0.5, 10])),
            ("/qualities", serde_json::json!([0.5, 1, 2])),
            ("/materials/0", serde_json::json!(["PLA", "3d_printer", 0.05, null, 1.24])),
        ] {
            let mut bad = json.clone();
            *bad.pointer_mut(pointer).unwrap() = array;
            assert!(serde_json::from_value::<PriceTableSpec>(bad).is_err(), "{pointer}");
        }
    }

    #[test]
    fn the_json_shape() {
        let json = serde_json::to_value(PriceTable::default_for("EUR")).unwrap();
        assert_eq!(
            json["materials"][0],
            serde_json::json!({"material": "PLA", "equipment_type": "3d_printer", "price_per_gram": 0.05, "density_g_cm3": 1.24})
        );
        assert_eq!(json["machines"]["3d_printer"]["fill_fraction"], serde_json::json!(0.35));
        assert_eq!(json["materials"][4]["price_per_cm3"], serde_json::json!(0.15));
        assert_eq!(json["setup_fee"], serde_json::json!(2));
    }
}
