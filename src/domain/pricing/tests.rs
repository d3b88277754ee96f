//! Quotes checked against figures computed by hand, and properties over random tables and
//! inputs: the lines add up, totals grow with grams, time and volume, and nothing within the
//! bounds panics or overflows.

use proptest::prelude::*;

use super::*;
use crate::domain::equipment::EquipmentType;
use crate::domain::inventory::Quantity;

fn input(equipment_type: EquipmentType) -> QuoteInput {
    QuoteInput { equipment_type, volume_cm3: None, grams: None, time_s: None, material: None, cut_length_mm: None }
}

fn sliced(grams: i64, time_s: i64, material: Option<&str>) -> QuoteInput {
    QuoteInput {
        grams: Some(Quantity(grams)),
        time_s: Some(time_s),
        material: material.map(str::to_string),
        ..input(EquipmentType::Printer3d)
    }
}

/// (material, quality, grams in thousandths, time_s, material, machine, setup, total)
type Row<'a> = (Option<&'a str>, Quality, Option<i64>, i64, i64, i64, i64, i64);

fn rows(quotes: &Quotes) -> Vec<Row<'_>> {
    quotes
        .options
        .iter()
        .map(|o| {
            (
                o.material.as_deref(),
                o.quality,
                o.grams.map(|g| g.0),
                o.time_s,
                o.material_minor,
                o.machine_minor,
                o.setup_minor,
                o.total_minor,
            )
        })
        .collect()
}

fn quote(table: &PriceTable, input: &QuoteInput, currency: &str) -> Quotes {
    quote_options(table, input, currency).unwrap()
}

#[test]
fn an_unsliced_model_is_priced_per_material_and_quality() {
    // 20 cm³ at a fill of 0.35: 7 cm³ printed. PLA: 7 × 1.24 = 8.68 g, 8.68 × 0.05 € = 43.4
    // cents -> 43. Time at 10 cm³/h: 7 / 10 h = 2520 s at standard, × 0.75 = 1890 s draft,
    // × 1.5 = 3780 s fine; at 2 €/h: 105, 140 and 210 cents. Setup 2 €.
    let table = PriceTable::default_for("EUR");
    let model = QuoteInput { volume_cm3: Some(20.0), ..input(EquipmentType::Printer3d) };
    let quotes = quote(&table, &model, "EUR");
    assert_eq!(quotes.currency, "EUR");
    assert_eq!(quotes.options.len(), 12, "PLA, PETG, ABS and TPU at three qualities: resin is for SLA");
    use Quality::{Draft, Fine, Standard};
    assert_eq!(
        rows(&quotes)[..3],
        [
            (Some("PLA"), Draft, Some(8_680), 1890, 43, 105, 200, 348),
            (Some("PLA"), Standard, Some(8_680), 2520, 43, 140, 200, 383),
            (Some("PLA"), Fine, Some(8_680), 3780, 43, 210, 200, 453),
        ]
    );
    // PETG: 7 × 1.27 = 8.89 g × 0.06 = 53.34 -> 53. ABS: 7.28 g × 0.06 = 43.68 -> 44.
    // TPU: 8.47 g × 0.10 = 84.7 -> 85.
    let standard: Vec<_> = rows(&quotes).into_iter().filter(|r| r.1 == Standard).map(|r| (r.0, r.2, r.4)).collect();
    assert_eq!(
        standard,
        [
            (Some("PLA"), Some(8_680), 43),
            (Some("PETG"), Some(8_890), 53),
            (Some("ABS"), Some(7_280), 44),
            (Some("TPU"), Some(8_470), 85)
        ]
    );
    assert_eq!(quotes.option(Some("petg"), Fine).map(|o| o.total_minor), Some(53 + 210 + 200));
    assert_eq!(quotes.option(Some("PLA"), Quality::AsSliced), None);
}

#[test]
fn a_model_in_a_material_of_the_table_is_priced_in_it_alone() {
    let table = PriceTable::default_for("EUR");
    let model =
        QuoteInput { volume_cm3: Some(20.0), material: Some(" tpu ".into()), ..input(EquipmentType::Printer3d) };
    let materials: Vec<_> = quote(&table, &model, "EUR").options.into_iter().map(|o| o.material).collect();
    assert_eq!(materials, vec![Some("TPU".to_string()); 3]);
}

#[test]
fn a_sliced_file_is_priced_as_sliced_in_its_own_material_or_in_each() {
    // 10.5 g of PETG and half an hour: 10.5 × 0.06 = 63 cents, 0.5 h × 2 € = 100 cents.
    let table = PriceTable::default_for("EUR");
    let own = quote(&table, &sliced(10_500, 1800, Some("PETG")), "EUR");
    assert_eq!(rows(&own), [(Some("PETG"), Quality::AsSliced, Some(10_500), 1800, 63, 100, 200, 363)]);
    // A material the table does not list (or none): each of the printer's materials.
    for material in [Some("Nylon"), None] {
        let each = quote(&table, &sliced(10_500, 1800, material), "EUR");
        let names: Vec<_> = each.options.iter().map(|o| o.material.as_deref()).collect();
        assert_eq!(names, [Some("PLA"), Some("PETG"), Some("ABS"), Some("TPU")]);
        assert!(each.options.iter().all(|o| o.quality == Quality::AsSliced && o.time_s == 1800));
    }
}

#[test]
fn lines_are_rounded_half_away_from_zero() {
    // 1.25 g at 0.02 €: 2.5 cents -> 3 (a banker's rounding would say 2). 9 s at 2 €/h: 0.5
    // cents -> 1.
    let mut spec = PriceTable::default_for("EUR").spec().clone();
    spec.materials[0].price_per_gram = Rate::new(2, 2);
    spec.setup_fee = Rate::ZERO;
    let table = PriceTable::new(spec).unwrap();
    let quotes = quote(&table, &sliced(1_250, 9, Some("PLA")), "EUR");
    assert_eq!(rows(&quotes), [(Some("PLA"), Quality::AsSliced, Some(1_250), 9, 3, 1, 0, 4)]);
}

#[test]
fn a_price_per_cm3_is_paid_for_the_grams_over_the_density() {
    // 55 g of resin at 1.1 g/cm³ is 50 cm³; at 0.15 € a cm³: 7.50 €. An hour at 3 €/h.
    let table = PriceTable::default_for("EUR");
    let resin = QuoteInput { equipment_type: EquipmentType::SlaPrinter, ..sliced(55_000, 3600, None) };
    let quotes = quote(&table, &resin, "EUR");
    assert_eq!(rows(&quotes), [(Some("Standard resin"), Quality::AsSliced, Some(55_000), 3600, 750, 300, 200, 1250)]);
}

#[test]
fn currencies_with_no_or_three_minor_digits() {
    // The default table is scaled to the currency: 5 yen or 0.005 dinar a gram, 200 yen or
    // 0.2 dinar an hour and a setup. 10.5 g: 52.5 yen -> 53 (53 fils); half an hour: 100.
    let job = sliced(10_500, 1800, Some("PLA"));
    for currency in ["JPY", "KWD"] {
        let quotes = quote(&PriceTable::default_for(currency), &job, currency);
        assert_eq!(rows(&quotes), [(Some("PLA"), Quality::AsSliced, Some(10_500), 1800, 53, 100, 200, 353)]);
        assert_eq!(quotes.options[0].currency, currency);
    }
    // One table, three currencies: the same 0.05 a gram is 43.4 cents, 0.434 yen, 434 fils.
    let table = PriceTable::default_for("EUR");
    let eight_grams = sliced(8_680, 0, Some("PLA"));
    let material = |currency| quote(&table, &eight_grams, currency).options[0].material_minor;
    assert_eq!((material("EUR"), material("JPY"), material("KWD")), (43, 0, 434));
}

#[test]
fn a_laser_job_is_priced_by_its_cut_path_at_each_quality() {
    // 4500 mm at 15 mm/s: 300 s standard, 225 s draft, 450 s fine; at 30 €/h: 250 cents,
    // 187.5 -> 188, 375.
    let table = PriceTable::default_for("EUR");
    let cut = QuoteInput { cut_length_mm: Some(4500.0), ..input(EquipmentType::LaserCutter) };
    use Quality::{Draft, Fine, Standard};
    assert_eq!(
        rows(&quote(&table, &cut, "EUR")),
        [
            (None, Draft, None, 225, 0, 188, 200, 388),
            (None, Standard, None, 300, 0, 250, 200, 450),
            (None, Fine, None, 450, 0, 375, 200, 575),
        ]
    );
    // A file that states its time is priced as it is.
    let timed = QuoteInput { time_s: Some(120), ..cut };
    assert_eq!(rows(&quote(&table, &timed, "EUR")), [(None, Quality::AsSliced, None, 120, 0, 100, 200, 300)]);
}

#[test]
fn a_cnc_job_is_priced_by_its_time() {
    // An hour and a half at 40 €/h.
    let table = PriceTable::default_for("EUR");
    let job = QuoteInput { time_s: Some(5400), ..input(EquipmentType::CncMachine) };
    assert_eq!(rows(&quote(&table, &job, "EUR")), [(None, Quality::AsSliced, None, 5400, 0, 6000, 200, 6200)]);
}

#[test]
fn what_cannot_be_priced_says_why() {
    let table = PriceTable::default_for("EUR");
    let refused = |input: QuoteInput| quote_options(&table, &input, "EUR").unwrap_err();
    assert_eq!(refused(input(EquipmentType::Workstation)), QuoteError::NotPriced(EquipmentType::Workstation));
    let only_time = QuoteInput { time_s: Some(60), ..input(EquipmentType::Printer3d) };
    assert!(matches!(refused(only_time), QuoteError::Missing(why) if why.contains("volume_cm3")));
    assert!(
        matches!(refused(input(EquipmentType::LaserCutter)), QuoteError::Missing(why) if why.contains("cut_length_mm"))
    );
    assert!(matches!(refused(input(EquipmentType::CncMachine)), QuoteError::Missing(_)));

    let mut spec = table.spec().clone();
    spec.machines.laser_cutter = None;
    spec.materials.retain(|m| m.equipment_type == PrinterType::Printer3d);
    let partial = PriceTable::new(spec).unwrap();
    let cut = QuoteInput { cut_length_mm: Some(10.0), ..input(EquipmentType::LaserCutter) };
    assert_eq!(quote_options(&partial, &cut, "EUR"), Err(QuoteError::NotPriced(EquipmentType::LaserCutter)));
    let resin = QuoteInput { volume_cm3: Some(1.0), ..input(EquipmentType::SlaPrinter) };
    assert_eq!(quote_options(&partial, &resin, "EUR"), Err(QuoteError::NoMaterial(EquipmentType::SlaPrinter)));
    assert_eq!(
        QuoteError::NoMaterial(EquipmentType::SlaPrinter).to_string(),
        "this makerspace's price table lists no material for sla_printer"
    );
}

#[test]
fn bad_figures_are_refused_not_panicked_on() {
    let table = PriceTable::default_for("EUR");
    let bad = [
        QuoteInput { volume_cm3: Some(f64::NAN), ..input(EquipmentType::Printer3d) },
        QuoteInput { volume_cm3: Some(-1.0), ..input(EquipmentType::Printer3d) },
        QuoteInput { volume_cm3: Some(1e7), ..input(EquipmentType::Printer3d) },
        QuoteInput { cut_length_mm: Some(f64::INFINITY), ..input(EquipmentType::LaserCutter) },
        sliced(-1, 10, None),
        sliced(1_000, -10, None),
        sliced(1_000, i64::MAX, None),
        sliced(i64::MAX, 10, None),
        sliced(1_000, 10, Some("PLA\u{1b}[2J")),
    ];
    for input in bad {
        assert!(matches!(quote_options(&table, &input, "EUR"), Err(QuoteError::Invalid(_))), "{input:?}");
    }
}

/// Every number of the table at its largest, and its smallest speeds and densities.
fn largest_table() -> PriceTable {
    let max = |units| Rate::new(units, 0).unwrap();
    let least = Rate::tenths(1);
    let printer = PrinterRates { rate_per_hour: max(100_000), fill_fraction: max(1), deposition_cm3_per_hour: least };
    PriceTable::new(PriceTableSpec {
        materials: vec![
            MaterialPrice {
                material: "Gold".into(),
                equipment_type: PrinterType::Printer3d,
                price_per_gram: None,
                price_per_cm3: Some(max(1000)),
                density_g_cm3: least,
            },
            MaterialPrice {
                material: "Lead".into(),
                equipment_type: PrinterType::Printer3d,
                price_per_gram: Some(max(1000)),
                price_per_cm3: None,
                density_g_cm3: max(30),
            },
        ],
        machines: MachineRates {
            printer_3d: Some(printer.clone()),
            sla_printer: Some(printer),
            laser_cutter: Some(LaserRates { rate_per_hour: max(100_000), cutting_speed_mm_s: least }),
            cnc_machine: Some(TimeRate { rate_per_hour: max(100_000) }),
        },
        setup_fee: max(100_000),
        qualities: QualityFactors { draft: max(10), standard: max(10), fine: max(10) },
    })
    .unwrap()
}

#[test]
fn the_largest_table_and_inputs_still_fit() {
    // Bounds, not luck: the largest line is the machine time of the largest model at the
    // slowest deposition and the slowest quality, 3.6e11 s, about 1e17 minor units in a
    // currency of four decimals, far inside an i64 (9.2e18).
    let table = largest_table();
    let inputs = [
        QuoteInput { volume_cm3: Some(quote::MAX_VOLUME_CM3), ..input(EquipmentType::Printer3d) },
        QuoteInput { cut_length_mm: Some(quote::MAX_CUT_LENGTH_MM), ..input(EquipmentType::LaserCutter) },
        sliced(Quantity::from_units(crate::domain::inventory::MAX_UNITS).0, quote::MAX_TIME_S, None),
        QuoteInput { time_s: Some(quote::MAX_TIME_S), ..input(EquipmentType::CncMachine) },
    ];
    for currency in ["JPY", "EUR", "KWD", "CLF"] {
        for input in &inputs {
            let quotes = quote(&table, input, currency);
            assert!(quotes.options.iter().all(|o| o.total_minor > 0 && o.total_minor < i64::MAX / 50));
        }
    }
    let biggest = quote(&table, &inputs[0], "CLF");
    assert_eq!(biggest.options[0].time_s, 360_000_000_000);
    assert_eq!(biggest.options[0].machine_minor, 100_000_000_000_000_000);
}

#[test]
fn quotes_are_stored_as_json_and_read_back() {
    let quotes = quote(&PriceTable::default_for("EUR"), &sliced(10_500, 1800, Some("PETG")), "EUR");
    let json = serde_json::to_value(&quotes).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"currency": "EUR", "options": [{
            "material": "PETG", "quality": "as_sliced", "grams": 10.5, "time_s": 1800,
            "material_minor": 63, "machine_minor": 100, "setup_minor": 200, "total_minor": 363, "currency": "EUR"
        }]})
    );
    assert_eq!(serde_json::from_value::<Quotes>(json).unwrap(), quotes);
}

// Properties.

fn rate(max_millionths: i64) -> impl Strategy<Value = Rate> {
    (0..=max_millionths).prop_map(|u| Rate::new(u, 6).unwrap())
}

fn positive(min_millionths: i64, max_millionths: i64) -> impl Strategy<Value = Rate> {
    (min_millionths..=max_millionths).prop_map(|u| Rate::new(u, 6).unwrap())
}

const M: i64 = 1_000_000;

fn material(index: usize) -> impl Strategy<Value = MaterialPrice> {
    (any::<bool>(), any::<bool>(), rate(1000 * M), positive(M / 10, 30 * M)).prop_map(
        move |(sla, per_gram, price, density)| MaterialPrice {
            material: format!("M{index}"),
            equipment_type: if sla { PrinterType::SlaPrinter } else { PrinterType::Printer3d },
            price_per_gram: per_gram.then_some(price),
            price_per_cm3: (!per_gram).then_some(price),
            density_g_cm3: density,
        },
    )
}

fn printer() -> impl Strategy<Value = PrinterRates> {
    (rate(100_000 * M), positive(1, M), positive(M / 10, 10_000 * M)).prop_map(|(r, f, d)| PrinterRates {
        rate_per_hour: r,
        fill_fraction: f,
        deposition_cm3_per_hour: d,
    })
}

fn table() -> impl Strategy<Value = PriceTable> {
    let materials = (0..4_usize).prop_flat_map(|n| (0..n).map(material).collect::<Vec<_>>());
    let factor = || positive(M / 10, 10 * M);
    (
        materials,
        proptest::option::of(printer()),
        proptest::option::of(printer()),
        proptest::option::of((rate(100_000 * M), positive(M / 10, 10_000 * M))),
        proptest::option::of(rate(100_000 * M)),
        rate(100_000 * M),
        (factor(), factor(), factor()),
    )
        .prop_map(|(materials, fdm, sla, laser, cnc, setup_fee, (draft, standard, fine))| {
            PriceTable::new(PriceTableSpec {
                materials,
                machines: MachineRates {
                    printer_3d: fdm,
                    sla_printer: sla,
                    laser_cutter: laser.map(|(r, s)| LaserRates { rate_per_hour: r, cutting_speed_mm_s: s }),
                    cnc_machine: cnc.map(|r| TimeRate { rate_per_hour: r }),
                },
                setup_fee,
                qualities: QualityFactors { draft, standard, fine },
            })
            .unwrap()
        })
}

fn equipment() -> impl Strategy<Value = EquipmentType> {
    proptest::sample::select(EquipmentType::ALL.to_vec())
}

/// A volume or a length: within the bounds, or any double at all.
fn figure() -> impl Strategy<Value = f64> {
    prop_oneof![0.0..=1e6_f64, any::<f64>()]
}

/// Inputs within the bounds, and some beyond them.
fn any_input() -> impl Strategy<Value = QuoteInput> {
    (
        equipment(),
        proptest::option::of(figure()),
        proptest::option::of(prop_oneof![0..=100_000_000_000_i64, any::<i64>()]),
        proptest::option::of(prop_oneof![0..=quote::MAX_TIME_S, any::<i64>()]),
        proptest::option::of(prop_oneof![Just("M0".to_string()), Just("m1".to_string()), ".{0,5}"]),
        proptest::option::of(figure()),
    )
        .prop_map(|(equipment_type, volume_cm3, grams, time_s, material, cut_length_mm)| QuoteInput {
            equipment_type,
            volume_cm3,
            grams: grams.map(Quantity),
            time_s,
            material,
            cut_length_mm,
        })
}

fn currency() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec!["JPY", "EUR", "KWD", "CLF"])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_lines_add_up_and_nothing_panics(table in table(), input in any_input(), currency in currency()) {
        match quote_options(&table, &input, currency) {
            Ok(quotes) => {
                prop_assert!(!quotes.options.is_empty());
                for o in &quotes.options {
                    prop_assert_eq!(o.total_minor, o.material_minor + o.machine_minor + o.setup_minor);
                    prop_assert!(o.material_minor >= 0 && o.machine_minor >= 0 && o.setup_minor >= 0);
                    prop_assert_eq!(&o.currency, currency);
                }
                prop_assert_eq!(quote_options(&table, &input, currency), Ok(quotes), "deterministic");
            }
            Err(error) => prop_assert_ne!(error, QuoteError::TooLarge),
        }
    }

    #[test]
    fn totals_grow_with_grams_and_time(
        table in table(),
        grams in (0..=100_000_000_000_i64, 0..=100_000_000_000_i64),
        time in (0..=quote::MAX_TIME_S, 0..=quote::MAX_TIME_S),
        currency in currency(),
    ) {
        let (less_g, more_g) = (grams.0.min(grams.1), grams.0.max(grams.1));
        let (less_t, more_t) = (time.0.min(time.1), time.0.max(time.1));
        let (Ok(low), Ok(high)) = (
            quote_options(&table, &sliced(less_g, less_t, None), currency),
            quote_options(&table, &sliced(more_g, more_t, None), currency),
        ) else {
            return Ok(());
        };
        for (l, h) in low.options.iter().zip(&high.options) {
            prop_assert_eq!(&l.material, &h.material);
            prop_assert!(l.material_minor <= h.material_minor);
            prop_assert!(l.machine_minor <= h.machine_minor);
            prop_assert!(l.total_minor <= h.total_minor);
        }
        // More grams alone, or more time alone, never costs less either.
        let (Ok(grams_only), Ok(time_only)) = (
            quote_options(&table, &sliced(more_g, less_t, None), currency),
            quote_options(&table, &sliced(less_g, more_t, None), currency),
        ) else {
            return Ok(());
        };
        for ((l, g), t) in low.options.iter().zip(&grams_only.options).zip(&time_only.options) {
            prop_assert!(l.total_minor <= g.total_minor && l.total_minor <= t.total_minor);
        }
    }

    #[test]
    fn totals_grow_with_a_models_volume(
        table in table(),
        volumes in (0.0..=1e6_f64, 0.0..=1e6_f64),
        sla in any::<bool>(),
        currency in currency(),
    ) {
        let (less, more) = (volumes.0.min(volumes.1), volumes.0.max(volumes.1));
        let kind = if sla { EquipmentType::SlaPrinter } else { EquipmentType::Printer3d };
        let model = |v| QuoteInput { volume_cm3: Some(v), ..input(kind) };
        if let (Ok(low), Ok(high)) = (quote_options(&table, &model(less), currency), quote_options(&table, &model(more), currency)) {
            prop_assert_eq!(low.options.len(), high.options.len());
            for (l, h) in low.options.iter().zip(&high.options) {
                prop_assert!(l.grams <= h.grams && l.time_s <= h.time_s && l.total_minor <= h.total_minor);
            }
        }
    }
}
