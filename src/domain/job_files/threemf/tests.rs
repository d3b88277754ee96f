//! Packages built here with the `zip` writer, mirroring what the slicers write: element and
//! attribute names, namespaces and the split of a Bambu Studio project into parts.

use std::io::{Cursor, Write};

use proptest::prelude::*;

use super::*;
use crate::domain::inventory::Quantity;
use crate::domain::job_files::{sniff, FileKind};

fn package(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn analyse(bytes: &[u8]) -> Result<ThreeMfAnalysis, AnalysisError> {
    analyze(Cursor::new(bytes))
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
 <Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
 <Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>
 <Default Extension="png" ContentType="image/png"/>
 <Default Extension="gcode" ContentType="text/x.gcode"/>
</Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
 <Relationship Target="/3D/3dmodel.model" Id="rel-1" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>
</Relationships>"#;

/// A mesh of a cube from `-half` to `half` on each axis: 8 vertices, 12 triangles.
fn cube_mesh(half: f64) -> String {
    let mut mesh = String::from("   <mesh>\n    <vertices>\n");
    for corner in 0..8 {
        let at = |axis: usize| if corner >> axis & 1 == 0 { -half } else { half };
        mesh.push_str(&format!("     <vertex x=\"{}\" y=\"{}\" z=\"{}\"/>\n", at(0), at(1), at(2)));
    }
    mesh.push_str("    </vertices>\n    <triangles>\n");
    let faces = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]];
    for [a, b, c, d] in faces {
        mesh.push_str(&format!(
            "     <triangle v1=\"{a}\" v2=\"{b}\" v3=\"{c}\"/>\n     <triangle v1=\"{a}\" v2=\"{c}\" v3=\"{d}\"/>\n"
        ));
    }
    mesh.push_str("    </triangles>\n   </mesh>\n");
    mesh
}

/// Bambu Studio's root model: metadata, an assembly object whose component lives in its own
/// part (`p:path`), and a build item placing it on the plate.
const BAMBU_MODEL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:BambuStudio="http://schemas.bambulab.com/package/2021" xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06" requiredextensions="p">
 <metadata name="Application">BambuStudio-02.01.01.52</metadata>
 <metadata name="BambuStudio:3mfVersion">1</metadata>
 <metadata name="Copyright"></metadata>
 <metadata name="CreationDate">2024-06-01</metadata>
 <metadata name="Title">Calibration cube &amp; lid</metadata>
 <resources>
  <object id="2" p:UUID="00000001-61cb-4c03-9d28-80fed5dfa1dc" type="model">
   <components>
    <component p:path="/3D/Objects/object_1.model" objectid="1" p:UUID="00010000-b206-40ff-9872-83e8017abed1" transform="1 0 0 0 1 0 0 0 1 0 0 0"/>
   </components>
  </object>
 </resources>
 <build p:UUID="2c7c17d8-22b5-4d84-8835-1976022ea369">
  <item objectid="2" p:UUID="00000002-b1ec-4553-aec9-835e5b724bb4" transform="1 0 0 0 1 0 0 0 1 128 128 5" printable="1"/>
 </build>
</model>
"#;

fn bambu_object() -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:BambuStudio="http://schemas.bambulab.com/package/2021" xmlns:p="http://schemas.microsoft.com/3dmanufacturing/production/2015/06" requiredextensions="p">
 <metadata name="BambuStudio:3mfVersion">1</metadata>
 <resources>
  <object id="1" p:UUID="00010000-81cb-4c03-9d28-80fed5dfa1dc" type="model">
{}  </object>
 </resources>
 <build/>
</model>
"#,
        cube_mesh(5.0)
    )
}

const MODEL_SETTINGS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<config>
  <object id="2">
    <metadata key="name" value="Cube"/>
    <metadata key="extruder" value="1"/>
    <part id="1" subtype="normal_part">
      <metadata key="name" value="Cube"/>
      <metadata key="matrix" value="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/>
      <mesh_stat face_count="12" edges_fixed="0" degenerate_facets="0" facets_removed="0" facets_reversed="0" backwards_edges="0"/>
    </part>
  </object>
  <plate>
    <metadata key="plater_id" value="1"/>
    <metadata key="plater_name" value="Cubes"/>
    <metadata key="locked" value="false"/>
    <metadata key="gcode_file" value="Metadata/plate_1.gcode"/>
    <metadata key="thumbnail_file" value="Metadata/plate_1.png"/>
    <model_instance>
      <metadata key="object_id" value="2"/>
      <metadata key="instance_id" value="0"/>
      <metadata key="identify_id" value="101"/>
    </model_instance>
  </plate>
  <plate>
    <metadata key="plater_id" value="2"/>
    <metadata key="plater_name" value=""/>
    <metadata key="locked" value="false"/>
  </plate>
  <assemble>
   <assemble_item object_id="2" instance_id="0" transform="1 0 0 0 1 0 0 0 1 128 128 5" offset="0 0 0" />
  </assemble>
</config>
"#;

const SLICE_INFO: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<config>
  <header>
    <header_item key="X-BBL-Client-Type" value="slicer"/>
    <header_item key="X-BBL-Client-Version" value="02.01.01.52"/>
  </header>
  <plate>
    <metadata key="index" value="1"/>
    <metadata key="extruder_type" value="0"/>
    <metadata key="printer_model_id" value="C12"/>
    <metadata key="nozzle_diameters" value="0.4"/>
    <metadata key="timelapse_type" value="0"/>
    <metadata key="prediction" value="5025"/>
    <metadata key="weight" value="23.45"/>
    <metadata key="outside" value="false"/>
    <metadata key="support_used" value="false"/>
    <metadata key="label_object_enabled" value="true"/>
    <object identify_id="101" name="Cube" skipped="false" />
    <object identify_id="102" name="Cube" skipped="true" />
    <filament id="1" tray_info_idx="GFA00" type="PLA" color="#161616" used_m="7.53" used_g="22.46" />
    <filament id="3" tray_info_idx="GFG99" type="PETG HF" color="#F2F2F2FF" used_m="0.33" used_g="0.99" />
    <warning msg="bed_temperature_too_high_than_filament" level="1" error_code ="1000C001"  />
  </plate>
</config>
"##;

const PROJECT_SETTINGS: &str = r##"{
    "filament_colour": ["#161616", "#FFFFFF", "#F2F2F2"],
    "filament_type": ["PLA", "PLA", "PETG"],
    "layer_height": "0.2",
    "nozzle_diameter": ["0.4"],
    "printer_model": "Bambu Lab P1S",
    "version": "02.01.01.52"
}"##;

fn bambu_sliced() -> Vec<u8> {
    let object = bambu_object();
    package(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("3D/3dmodel.model", BAMBU_MODEL.as_bytes()),
        ("3D/_rels/3dmodel.model.rels", b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\n <Relationship Target=\"/3D/Objects/object_1.model\" Id=\"rel-1\" Type=\"http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel\"/>\n</Relationships>"),
        ("3D/Objects/object_1.model", object.as_bytes()),
        ("Metadata/model_settings.config", MODEL_SETTINGS.as_bytes()),
        ("Metadata/slice_info.config", SLICE_INFO.as_bytes()),
        ("Metadata/project_settings.config", PROJECT_SETTINGS.as_bytes()),
        ("Metadata/plate_1.gcode", b"; HEADER_BLOCK_START\n; BambuStudio 02.01.01.52\n; HEADER_BLOCK_END\nG28\n"),
        ("Metadata/plate_1.gcode.md5", b"0123456789abcdef0123456789abcdef"),
        ("Metadata/plate_1.png", b"\x89PNG\r\n\x1a\n"),
    ])
}

#[test]
fn a_sliced_bambu_studio_project() {
    let file = bambu_sliced();
    assert_eq!(sniff(&file, file.len() as u64), Some(FileKind::ThreeMf));
    let analysis = analyse(&file).unwrap();
    let application = analysis.application.clone().unwrap();
    assert_eq!(application.slicer, Some(Slicer::BambuStudio));
    assert_eq!(application.version.as_deref(), Some("02.01.01.52"));
    assert_eq!(analysis.title.as_deref(), Some("Calibration cube & lid"));
    assert_eq!(analysis.bounding_box, Some(BoundingBox { min: [123.0, 123.0, 0.0], max: [133.0, 133.0, 10.0] }));
    assert!(analysis.bounding_box_exact);
    assert_eq!((analysis.triangles, analysis.build_items), (12, 1));
    assert!(analysis.sliced);
    assert_eq!(
        analysis.plates,
        vec![
            Plate {
                index: 1,
                name: Some("Cubes".into()),
                gcode_entry: Some("Metadata/plate_1.gcode".into()),
                objects: 1,
                print_seconds: Some(5025),
                filament_grams: Quantity::parse("23.45"),
                nozzle_mm: Some(0.4),
                filaments: vec![
                    PlateFilament {
                        slot: 1,
                        material: Some("PLA".into()),
                        colour: Some("#161616".into()),
                        grams: Quantity::parse("22.46"),
                        length_mm: Quantity::parse("7530"),
                    },
                    PlateFilament {
                        slot: 3,
                        material: Some("PETG HF".into()),
                        colour: Some("#F2F2F2FF".into()),
                        grams: Quantity::parse("0.99"),
                        length_mm: Quantity::parse("330"),
                    },
                ],
            },
            Plate { index: 2, ..Plate::default() },
        ]
    );
    let settings = analysis.settings.unwrap();
    assert_eq!(settings.materials, ["PLA", "PLA", "PETG"]);
    assert_eq!(settings.colours[0], "#161616");
    assert_eq!(settings.nozzle_mm, Some(0.4));
    assert_eq!(settings.printer_model.as_deref(), Some("Bambu Lab P1S"));
}

#[test]
fn an_unsliced_project_has_plates_without_estimates() {
    let object = bambu_object();
    let file = package(&[
        ("_rels/.rels", RELS.as_bytes()),
        ("3D/3dmodel.model", BAMBU_MODEL.as_bytes()),
        ("3D/Objects/object_1.model", object.as_bytes()),
        ("Metadata/model_settings.config", MODEL_SETTINGS.as_bytes()),
    ]);
    let analysis = analyse(&file).unwrap();
    assert!(!analysis.sliced);
    assert_eq!(analysis.plates.len(), 2);
    assert_eq!((analysis.plates[0].gcode_entry.as_ref(), analysis.plates[0].print_seconds), (None, None));
    assert_eq!(analysis.settings, None);
}

/// PrusaSlicer: one model part with the meshes inline (it signs `Application` as
/// `PrusaSlicer-<version>`), build items with transforms, its config beside; no plates.
#[test]
fn a_prusaslicer_project() {
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let model = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<model unit="millimeter" xml:lang="en-US" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:slic3rpe="http://schemas.slic3r.org/3mf/2017/06">
 <metadata name="slic3rpe:Version3mf">1</metadata>
 <metadata name="Application">PrusaSlicer-2.7.1</metadata>
 <resources>
  <object id="1" type="model">
{cube}  </object>
  <object id="2" type="model">
{cube}  </object>
 </resources>
 <build>
  <item objectid="1" transform="1 0 0 0 1 0 0 0 1 100 100 5" printable="1"/>
  <item objectid="2" transform="{h} {h} 0 -{h} {h} 0 0 0 1 150 100 5" printable="1"/>
  <item objectid="1" transform="2 0 0 0 2 0 0 0 2 0 0 10"/>
 </build>
</model>
"#,
        cube = cube_mesh(5.0)
    );
    let config = b"; generated by PrusaSlicer 2.7.1+win64 on 2024-01-05 at 10:00:00 UTC\n\n; filament_type = PETG\n; nozzle_diameter = 0.6\n; layer_height = 0.2\n";
    let file = package(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("3D/3dmodel.model", model.as_bytes()),
        ("Metadata/Slic3r_PE.config", config),
        ("Metadata/Slic3r_PE_model.config", b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<config>\n <object id=\"1\" instances_count=\"1\">\n  <metadata type=\"object\" key=\"name\" value=\"cube.stl\"/>\n </object>\n</config>\n"),
    ]);
    let analysis = analyse(&file).unwrap();
    let application = analysis.application.clone().unwrap();
    assert_eq!((application.slicer, application.version.as_deref()), (Some(Slicer::PrusaSlicer), Some("2.7.1")));
    assert_eq!((analysis.triangles, analysis.build_items), (36, 3));
    let bounding_box = analysis.bounding_box.unwrap();
    // The turned cube's box reaches 5·√2 from its centre; the doubled one spans -10..10, z 0..20.
    assert!((bounding_box.max[0] - (150.0 + 10.0 * h)).abs() < 1e-9, "{bounding_box:?}");
    assert_eq!((bounding_box.min[0], bounding_box.min[2], bounding_box.max[2]), (-10.0, 0.0, 20.0));
    assert!(!analysis.bounding_box_exact);
    assert!(analysis.plates.is_empty() && !analysis.sliced);
    let settings = analysis.settings.unwrap();
    assert_eq!((settings.materials, settings.nozzle_mm), (vec!["PETG".to_string()], Some(0.6)));
}

#[test]
fn model_units_scale_to_millimetres() {
    let model = format!(
        "<model unit=\"inch\" xmlns=\"http://schemas.microsoft.com/3dmanufacturing/core/2015/02\"><resources><object id=\"1\">{}</object></resources><build><item objectid=\"1\"/></build></model>",
        cube_mesh(0.5)
    );
    let analysis = analyse(&package(&[("3D/3dmodel.model", model.as_bytes())])).unwrap();
    assert_eq!(analysis.bounding_box, Some(BoundingBox { min: [-12.7; 3], max: [12.7; 3] }));
}

fn model_error(model: &str) -> AnalysisError {
    analyse(&package(&[("3D/3dmodel.model", model.as_bytes())])).unwrap_err()
}

fn in_model(error: AnalysisError) -> String {
    match error {
        AnalysisError::InPackage { entry, reason } if entry == "3D/3dmodel.model" => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn broken_models_are_errors() {
    let wrap = |body: &str| {
        format!("<model unit=\"millimeter\"><resources>{body}</resources><build><item objectid=\"1\"/></build></model>")
    };
    let reason = in_model(model_error(&wrap("<object id=\"1\"><mesh><vertices><vertex x=\"0\" y=\"0\" z=\"0\"/></vertices><triangles><triangle v1=\"0\" v2=\"0\" v3=\"1\"/></triangles></mesh></object>")));
    assert_eq!(reason, "a triangle refers to a vertex that does not exist");
    let reason = in_model(model_error(&wrap(
        "<object id=\"1\"><mesh><vertices><vertex x=\"0\" y=\"NaN\" z=\"0\"/></vertices></mesh></object>",
    )));
    assert_eq!(reason, "`NaN` is not a number");
    let reason =
        in_model(model_error(&wrap("<object id=\"1\"><components><component objectid=\"1\"/></components></object>")));
    assert!(reason.contains("refer to themselves"), "{reason}");
    let reason = in_model(model_error(&wrap("<object id=\"7\"><mesh/></object>")));
    assert_eq!(reason, "object 1 of 3D/3dmodel.model does not exist");
    let reason = in_model(model_error("<model><resources><object id=\"1\"><mesh></resources></model>"));
    assert!(reason.starts_with("malformed XML"), "{reason}");
    let reason = in_model(model_error(&wrap("<object id=\"1\"><mesh/></object>").replace("millimeter", "furlong")));
    assert_eq!(reason, "unknown model unit `furlong`");
    let long = format!("<model><metadata name=\"Title\">{}</metadata></model>", "x".repeat(2 * package::MAX_XML_EVENT));
    assert_eq!(in_model(model_error(&long)), "an XML tag or text is longer than 1 MiB");
    assert_eq!(in_model(model_error("<config/>")), "it holds no <model>");
}

#[test]
fn broken_packages_are_errors() {
    assert!(matches!(analyse(b"PK\x03\x04 not really a zip"), Err(AnalysisError::NotAnArchive(_))));
    assert!(matches!(analyse(&[]), Err(AnalysisError::NotAnArchive(_))));
    let file = package(&[("Metadata/slice_info.config", SLICE_INFO.as_bytes())]);
    assert_eq!(analyse(&file), Err(AnalysisError::MissingEntry("3D/3dmodel.model".into())));
    let file = bambu_sliced();
    assert!(matches!(analyse(&file[..file.len() - 30]), Err(AnalysisError::NotAnArchive(_))));
    // A referenced part that is missing.
    let file = package(&[("3D/3dmodel.model", BAMBU_MODEL.as_bytes())]);
    assert_eq!(analyse(&file), Err(AnalysisError::MissingEntry("3D/Objects/object_1.model".into())));
}

/// Sets a flag or field in every central directory record of a package (the reader trusts
/// the central directory).
fn patch_central_directory(file: &mut [u8], offset: usize, value: u16) {
    let starts: Vec<usize> =
        file.windows(4).enumerate().filter(|(_, w)| *w == b"PK\x01\x02").map(|(at, _)| at).collect();
    for at in starts {
        file[at + offset..at + offset + 2].copy_from_slice(&value.to_le_bytes());
    }
}

#[test]
fn encrypted_and_unsupported_entries_are_refused() {
    let model = format!("<model><resources><object id=\"1\">{}</object></resources><build/></model>", cube_mesh(1.0));
    let plain = package(&[("3D/3dmodel.model", model.as_bytes())]);
    let mut encrypted = plain.clone();
    // General purpose flag bit 0: encrypted.
    patch_central_directory(&mut encrypted, 8, 1);
    assert_eq!(
        analyse(&encrypted),
        Err(AnalysisError::UnsupportedEntry { entry: "3D/3dmodel.model".into(), reason: "it is encrypted" })
    );
    let mut bzip2 = plain;
    // Compression method 12: bzip2, not compiled in.
    patch_central_directory(&mut bzip2, 10, 12);
    assert_eq!(
        analyse(&bzip2),
        Err(AnalysisError::UnsupportedEntry {
            entry: "3D/3dmodel.model".into(),
            reason: "its compression is not supported"
        })
    );
}

#[test]
fn a_bomb_stops_at_its_limit() {
    // 17 MiB of small elements deflate to about 17 KB; the config limit is 16 MiB.
    let bomb = b"<a/>".repeat(17 << 18);
    let model = "<model><resources/><build/></model>";
    let file = package(&[("3D/3dmodel.model", model.as_bytes()), ("Metadata/slice_info.config", &bomb)]);
    assert!(file.len() < 100_000);
    assert_eq!(
        analyse(&file),
        Err(AnalysisError::TooLarge { what: "Metadata/slice_info.config".into(), limit: package::MAX_CONFIG_BYTES })
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = analyse(&bytes);
        let mut with_magic = b"PK\x03\x04".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = analyse(&with_magic);
    }

    #[test]
    fn mutated_packages_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let mut file = bambu_sliced();
        let at = at.index(file.len());
        file[at] = byte;
        let cut = cut.index(file.len() + 1);
        let _ = analyse(&file[..cut]);
        let _ = analyse(&file);
    }

    #[test]
    fn mutated_parts_never_panic(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        // Corrupt the XML itself, then package it soundly: the XML readers see the damage.
        let object = bambu_object();
        let mut parts: Vec<(&str, Vec<u8>)> = vec![
            ("3D/3dmodel.model", BAMBU_MODEL.as_bytes().to_vec()),
            ("3D/Objects/object_1.model", object.into_bytes()),
            ("Metadata/model_settings.config", MODEL_SETTINGS.as_bytes().to_vec()),
            ("Metadata/slice_info.config", SLICE_INFO.as_bytes().to_vec()),
        ];
        let part = &mut parts[which].1;
        let at = at.index(part.len());
        part[at] = byte;
        let cut = cut.index(part.len() + 1);
        part.truncate(cut);
        let entries: Vec<(&str, &[u8])> = parts.iter().map(|(name, data)| (*name, data.as_slice())).collect();
        let _ = analyse(&package(&entries));
    }
}
