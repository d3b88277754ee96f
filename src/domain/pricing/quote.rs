//! Quotes: the price of a job, from what its file's analysis says and the makerspace's
//! [`PriceTable`], as options to choose from.
//!
//! - An unsliced model (an STL's volume): one option per material × quality. Grams are the
//!   volume × the printer's fill fraction × the material's density; time is that printed
//!   volume over the printer's deposition rate × the quality's factor.
//! - A sliced file (grams and time from the slicer, its quality baked in): one option per
//!   material it can be made in (its own when the table lists it, else each material of the
//!   printer's kind) at quality `as_sliced`.
//! - A laser job: one option per quality, its time the cut path's length over the cutting
//!   speed × the quality's factor (or the file's own time, `as_sliced`); no material line.
//! - A CNC job: its CAM's time, `as_sliced`.
//!
//! Money: each line (material, machine time, setup) is computed exactly in decimals, every
//! multiplication before the one division, and rounded once, to whole minor units of the
//! currency, half away from zero; the total is the sum of the rounded lines, so the lines
//! always add up to it. Overflow cannot happen within the bounds of a checked table and of
//! [`QuoteInput`] (the worst case is about 10^17 minor units, see the tests); the arithmetic
//! is checked all the same, and would answer [`QuoteError::TooLarge`], never panic or wrap.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rate::Rate;
use super::table::{MaterialPrice, PriceTable, PrinterRates, PrinterType};
use crate::domain::currency::minor_digits;
use crate::domain::equipment::EquipmentType;
use crate::domain::inventory::{Quantity, MAX_UNITS};
use crate::domain::validate::{optional_text, Invalid};

/// Largest model volume, in cm³: a cubic metre, the build volume of the largest printers.
pub const MAX_VOLUME_CM3: f64 = 1_000_000.0;
/// Longest cut path, in mm: a hundred kilometres.
pub const MAX_CUT_LENGTH_MM: f64 = 100_000_000.0;
/// Longest machine time a file may state, in seconds: a year.
pub const MAX_TIME_S: i64 = 366 * 24 * 3600;
/// Longest material name an input may give (slicers write short names).
pub const MAX_INPUT_MATERIAL_LEN: usize = 100;

/// How finely a job is made. A sliced file's quality is whatever its slicer was set to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Draft,
    Standard,
    Fine,
    /// As the file was sliced (or its CAM planned it): time factor 1.
    AsSliced,
}

impl Quality {
    /// The levels an estimate is made at, in the order options are listed.
    pub const LEVELS: [Quality; 3] = [Quality::Draft, Quality::Standard, Quality::Fine];

    fn factor(self, table: &PriceTable) -> Rate {
        let factors = &table.spec().qualities;
        match self {
            Quality::Draft => factors.draft,
            Quality::Standard => factors.standard,
            Quality::Fine => factors.fine,
            Quality::AsSliced => Rate::whole(1),
        }
    }
}

/// What a quote is made from: a file's analysis, or what a client states to preview a price.
/// Independent of the analyses' own types; intake maps an analysis to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    /// The kind of machine the job is for.
    pub equipment_type: EquipmentType,
    /// The model's volume (an STL's), in cm³: priced as an unsliced model.
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub volume_cm3: Option<f64>,
    /// Grams of material, as the slicer estimated them (with `time_s`: a sliced file).
    #[schema(value_type = Option<f64>, minimum = 0, maximum = 100_000_000, multiple_of = 0.001)]
    pub grams: Option<Quantity>,
    /// Machine time, in seconds, as the slicer or CAM estimated it.
    #[schema(minimum = 0, maximum = 31_622_400)]
    pub time_s: Option<i64>,
    /// The material the file was sliced for, or the one asked for: only it is quoted when the
    /// table lists it (case aside), else every material of the machine's kind.
    #[schema(max_length = 100, pattern = r"^\P{Cc}*$")]
    pub material: Option<String>,
    /// Length of the cut path (an SVG's), in mm: a laser job's time comes from it.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub cut_length_mm: Option<f64>,
}

/// One way to make the job, and its price in minor units of the makerspace's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteOption {
    /// The table's material; null for a job priced by its machine time alone (laser, CNC).
    pub material: Option<String>,
    pub quality: Quality,
    /// Material used, in grams (to the milligram); null when no material is priced.
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub grams: Option<Quantity>,
    /// Machine time, in seconds.
    #[schema(minimum = 0)]
    pub time_s: i64,
    #[schema(minimum = 0)]
    pub material_minor: i64,
    #[schema(minimum = 0)]
    pub machine_minor: i64,
    #[schema(minimum = 0)]
    pub setup_minor: i64,
    /// The sum of the three lines.
    #[schema(minimum = 0)]
    pub total_minor: i64,
    /// ISO 4217, the makerspace's.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// The options of a job, as stored with it; the one chosen is kept with the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quotes {
    /// ISO 4217, the makerspace's.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Materials in the table's order, each at draft, standard and fine (or as sliced).
    pub options: Vec<QuoteOption>,
}

impl Quotes {
    /// The option of a material (case aside; `None` for a job without one) at a quality.
    pub fn option(&self, material: Option<&str>, quality: Quality) -> Option<&QuoteOption> {
        self.options.iter().find(|o| {
            o.quality == quality
                && match (&o.material, material) {
                    (Some(mine), Some(wanted)) => mine.eq_ignore_ascii_case(wanted.trim()),
                    (None, None) => true,
                    _ => false,
                }
        })
    }
}

/// Why a job cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("this makerspace's price table has no rates for {}", .0.as_str())]
    NotPriced(EquipmentType),
    #[error("this makerspace's price table lists no material for {}", .0.as_str())]
    NoMaterial(EquipmentType),
    /// The input lacks what its kind of machine is priced from (the sentence says what).
    #[error("{0}")]
    Missing(&'static str),
    #[error("the amounts of this quote are too large to compute")]
    TooLarge,
}

/// An input's figures, checked and exact.
struct Figures {
    volume_cm3: Option<Decimal>,
    grams: Option<Quantity>,
    time_s: Option<i64>,
    material: Option<String>,
    cut_length_mm: Option<Decimal>,
}

/// A length or a volume to the thousandth (a cubic millimetre, a micrometre): geometry is
/// measured in doubles, and no print or cut is finer.
fn thousandths(field: &str, value: Option<f64>, max: f64) -> Result<Option<Decimal>, Invalid> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (0.0..=max).contains(&v) => Ok(Some(Decimal::new((v * 1000.0).round() as i64, 3))),
        Some(_) => Err(Invalid(format!("{field} must be a number from 0 to {max}"))),
    }
}

fn figures(input: &QuoteInput) -> Result<Figures, Invalid> {
    let grams = match input.grams {
        Some(g) if g.0 < 0 || g > Quantity::from_units(MAX_UNITS) => {
            return Err(Invalid(format!("grams must be from 0 to {MAX_UNITS}")))
        }
        grams => grams,
    };
    let time_s = match input.time_s {
        Some(t) if !(0..=MAX_TIME_S).contains(&t) => {
            return Err(Invalid(format!("time_s must be from 0 to {MAX_TIME_S} (a year)")))
        }
        time => time,
    };
    Ok(Figures {
        volume_cm3: thousandths("volume_cm3", input.volume_cm3, MAX_VOLUME_CM3)?,
        grams,
        time_s,
        material: optional_text("material", input.material.clone(), MAX_INPUT_MATERIAL_LEN)?,
        cut_length_mm: thousandths("cut_length_mm", input.cut_length_mm, MAX_CUT_LENGTH_MM)?,
    })
}

/// Rounds half away from zero to `decimals` places.
fn round(value: Decimal, decimals: u32) -> Decimal {
    value.round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
}

/// `factors` multiplied, then divided by `divisor`: one division, last.
fn product_over(factors: &[Decimal], divisor: Decimal) -> Result<Decimal, QuoteError> {
    let product = factors.iter().try_fold(Decimal::ONE, |acc, f| acc.checked_mul(*f)).ok_or(QuoteError::TooLarge)?;
    product.checked_div(divisor).ok_or(QuoteError::TooLarge)
}

/// Whole seconds, half away from zero.
fn seconds(value: Decimal) -> Result<i64, QuoteError> {
    i64::try_from(round(value, 0)).map_err(|_| QuoteError::TooLarge)
}

/// Amounts in major units of one currency made into its minor units.
struct Money<'a> {
    currency: &'a str,
    /// Minor units in a major unit: 100 for EUR, 1 for JPY, 1000 for KWD.
    per_major: Decimal,
}

impl<'a> Money<'a> {
    fn new(currency: &'a str) -> Money<'a> {
        Money { currency, per_major: Decimal::from(10_i64.pow(minor_digits(currency))) }
    }

    /// The product of `factors` (an amount in major units) over `divisor`, in minor units,
    /// rounded once.
    fn minor(&self, factors: &[Decimal], divisor: Decimal) -> Result<i64, QuoteError> {
        let mut all = factors.to_vec();
        all.push(self.per_major);
        i64::try_from(round(product_over(&all, divisor)?, 0)).map_err(|_| QuoteError::TooLarge)
    }
}

/// What one option uses before it is priced.
struct Usage<'t> {
    material: Option<&'t MaterialPrice>,
    quality: Quality,
    grams: Option<Quantity>,
    time_s: i64,
}

fn price(usage: Usage, rate_per_hour: Rate, setup_minor: i64, money: &Money) -> Result<QuoteOption, QuoteError> {
    let material_minor = match (usage.material, usage.grams) {
        (Some(material), Some(grams)) => {
            let grams = Decimal::new(grams.0, 3);
            match (material.price_per_gram, material.price_per_cm3) {
                (Some(per_gram), _) => money.minor(&[grams, per_gram.value()], Decimal::ONE)?,
                // The material's cm³ are its grams over its density.
                (None, Some(per_cm3)) => money.minor(&[grams, per_cm3.value()], material.density_g_cm3.value())?,
                (None, None) => 0,
            }
        }
        _ => 0,
    };
    let machine_minor = money.minor(&[Decimal::from(usage.time_s), rate_per_hour.value()], Decimal::from(3600))?;
    let total_minor = [material_minor, machine_minor, setup_minor]
        .into_iter()
        .try_fold(0_i64, i64::checked_add)
        .ok_or(QuoteError::TooLarge)?;
    Ok(QuoteOption {
        material: usage.material.map(|m| m.material.clone()),
        quality: usage.quality,
        grams: usage.grams,
        time_s: usage.time_s,
        material_minor,
        machine_minor,
        setup_minor,
        total_minor,
        currency: money.currency.to_string(),
    })
}

/// The materials to quote: the one asked for when the table lists it for this kind of
/// printer, else all of that kind.
fn materials<'t>(table: &'t PriceTable, kind: PrinterType, wanted: Option<&str>) -> Vec<&'t MaterialPrice> {
    let all: Vec<&MaterialPrice> = table.materials_for(kind).collect();
    match wanted.and_then(|w| all.iter().find(|m| m.material.eq_ignore_ascii_case(w.trim()))) {
        Some(one) => vec![*one],
        None => all,
    }
}

/// The options of a print, sliced (grams and time known) or estimated from the volume, and
/// the printer's hourly rate.
fn print_usages<'t>(
    table: &'t PriceTable,
    kind: PrinterType,
    rates: Option<&PrinterRates>,
    job: &Figures,
) -> Result<(Vec<Usage<'t>>, Rate), QuoteError> {
    let equipment = kind.equipment_type();
    let rates = rates.ok_or(QuoteError::NotPriced(equipment))?;
    let materials = materials(table, kind, job.material.as_deref());
    if materials.is_empty() {
        return Err(QuoteError::NoMaterial(equipment));
    }
    let mut usages = Vec::new();
    if let (Some(grams), Some(time_s)) = (job.grams, job.time_s) {
        for material in materials {
            usages.push(Usage { material: Some(material), quality: Quality::AsSliced, grams: Some(grams), time_s });
        }
        return Ok((usages, rates.rate_per_hour));
    }
    let volume = job.volume_cm3.ok_or(QuoteError::Missing(
        "a print is priced from the model's volume_cm3, or from a sliced file's grams and time_s",
    ))?;
    let printed_cm3 = volume.checked_mul(rates.fill_fraction.value()).ok_or(QuoteError::TooLarge)?;
    for material in materials {
        // In thousandths of a gram, rounded once.
        let milligrams =
            product_over(&[printed_cm3, material.density_g_cm3.value(), Decimal::from(1000)], Decimal::ONE)?;
        let grams = Quantity(i64::try_from(round(milligrams, 0)).map_err(|_| QuoteError::TooLarge)?);
        for quality in Quality::LEVELS {
            let time = product_over(
                &[printed_cm3, Decimal::from(3600), quality.factor(table).value()],
                rates.deposition_cm3_per_hour.value(),
            )?;
            usages.push(Usage { material: Some(material), quality, grams: Some(grams), time_s: seconds(time)? });
        }
    }
    Ok((usages, rates.rate_per_hour))
}

/// The options of a laser job: its own time, or one per quality from its cut path.
fn laser_usages(table: &PriceTable, speed_mm_s: Rate, job: &Figures) -> Result<Vec<Usage<'static>>, QuoteError> {
    if let Some(time_s) = job.time_s {
        return Ok(vec![Usage { material: None, quality: Quality::AsSliced, grams: None, time_s }]);
    }
    let length = job
        .cut_length_mm
        .ok_or(QuoteError::Missing("a laser job is priced from its cut_length_mm, or from a file's time_s"))?;
    Quality::LEVELS
        .into_iter()
        .map(|quality| {
            let time = product_over(&[length, quality.factor(table).value()], speed_mm_s.value())?;
            Ok(Usage { material: None, quality, grams: None, time_s: seconds(time)? })
        })
        .collect()
}

/// The options of a job, priced with `table` in `currency` (the makerspace's), in a fixed
/// order: materials in the table's order, each at draft, standard and fine (or one option
/// as sliced). An error says why nothing can be priced.
pub fn quote_options(table: &PriceTable, input: &QuoteInput, currency: &str) -> Result<Quotes, QuoteError> {
    let job = figures(input)?;
    let machines = &table.spec().machines;
    let not_priced = QuoteError::NotPriced(input.equipment_type);
    let (usages, rate_per_hour) = match input.equipment_type {
        EquipmentType::Printer3d => print_usages(table, PrinterType::Printer3d, machines.printer_3d.as_ref(), &job)?,
        EquipmentType::SlaPrinter => print_usages(table, PrinterType::SlaPrinter, machines.sla_printer.as_ref(), &job)?,
        EquipmentType::LaserCutter => {
            let rates = machines.laser_cutter.as_ref().ok_or(not_priced)?;
            (laser_usages(table, rates.cutting_speed_mm_s, &job)?, rates.rate_per_hour)
        }
        EquipmentType::CncMachine => {
            let rates = machines.cnc_machine.as_ref().ok_or(not_priced)?;
            let time_s = job.time_s.ok_or(QuoteError::Missing("a CNC job is priced from its CAM's time_s"))?;
            (vec![Usage { material: None, quality: Quality::AsSliced, grams: None, time_s }], rates.rate_per_hour)
        }
        EquipmentType::Workstation | EquipmentType::Tool => return Err(not_priced),
    };
    let money = Money::new(currency);
    let setup_minor = money.minor(&[table.spec().setup_fee.value()], Decimal::ONE)?;
    let options = usages
        .into_iter()
        .map(|usage| price(usage, rate_per_hour, setup_minor, &money))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Quotes { currency: currency.to_string(), options })
}
