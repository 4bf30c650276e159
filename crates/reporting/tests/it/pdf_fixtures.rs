//! Report fixtures shared by the tests and the `pdf_bench` example: synthetic
//! phantom images (PNG, made here) and a realistic case.

#![allow(dead_code)]

use chrono::{NaiveDate, TimeZone, Utc};
use reporting::pdf::{
    Addendum, ColourMap, Decision, Finding, KeyImage, Legend, LegendEntry, ModelInfo, Organisation,
    Reference, ReportDocument, ReportSections, Signature, Study, Urgency,
};

/// Encodes raw 8-bit pixels as PNG.
pub fn encode_png(width: u32, height: u32, colour: png::ColorType, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(colour);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().expect("png header");
        writer.write_image_data(pixels).expect("png data");
    }
    out
}

/// A grey head-CT-like phantom: a bright skull ring, mid-grey brain, a bright
/// blob (the "bleed") whose position depends on `seed`.
pub fn phantom_png(size: u32, seed: u32) -> Vec<u8> {
    let n = size as f32;
    let (bx, by) = (
        0.35 + 0.1 * (seed % 3) as f32,
        0.4 + 0.08 * (seed % 4) as f32,
    );
    let mut px = Vec::with_capacity((size * size) as usize);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = (x as f32 / n - 0.5, y as f32 / n - 0.5);
            let r = (u * u / 0.16 + v * v / 0.2).sqrt();
            let blob = ((x as f32 / n - bx).powi(2) + (y as f32 / n - by).powi(2)).sqrt();
            let value = if r > 1.0 {
                8.0
            } else if r > 0.9 {
                235.0
            } else if blob < 0.06 {
                200.0
            } else {
                105.0 + 20.0 * ((x + y) % 7) as f32 / 7.0
            };
            px.push(value as u8);
        }
    }
    encode_png(size, size, png::ColorType::Grayscale, &px)
}

/// The phantom with a jet-coloured heatmap blended over the blob, as RGB.
pub fn overlay_png(size: u32, seed: u32) -> Vec<u8> {
    let n = size as f32;
    let (bx, by) = (
        0.35 + 0.1 * (seed % 3) as f32,
        0.4 + 0.08 * (seed % 4) as f32,
    );
    let mut px = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            let d = ((x as f32 / n - bx).powi(2) + (y as f32 / n - by).powi(2)).sqrt();
            let t = (1.0 - d / 0.35).clamp(0.0, 1.0);
            let jet = |o: f32| (1.5 - (4.0 * t - o).abs()).clamp(0.0, 1.0) * 255.0;
            let base = 90.0;
            let a = 0.55;
            px.push((base * (1.0 - a) + jet(3.0) * a) as u8);
            px.push((base * (1.0 - a) + jet(2.0) * a) as u8);
            px.push((base * (1.0 - a) + jet(1.0) * a) as u8);
        }
    }
    encode_png(size, size, png::ColorType::Rgb, &px)
}

pub fn reference_list() -> Vec<Reference> {
    let pubmed = [
        ("PMID:31486294", "Deep learning algorithms for detection of critical findings in head CT scans", 2018, "The Lancet"),
        ("PMID:30398430", "Expert-level detection of acute intracranial hemorrhage on head computed tomography using deep learning", 2019, "Proceedings of the National Academy of Sciences"),
        ("PMID:29234807", "CheXNet radiologist-level pneumonia detection on chest X-rays with deep learning", 2017, "arXiv preprint"),
        ("PMID:28965608", "Grad-CAM visual explanations from deep networks via gradient-based localization", 2017, "International Conference on Computer Vision"),
        ("PMID:32061352", "On calibration of modern neural networks in medical imaging", 2020, "Medical Image Analysis"),
        ("PMID:33152114", "Volumetric assessment of intracerebral haemorrhage and outcome", 2021, "Stroke"),
    ];
    let guidelines = [
        (
            "GL:fleischner-2017",
            "Guidelines for management of incidental pulmonary nodules detected on CT images",
            2017,
            "Fleischner Society",
            "https://pubs.rsna.org/doi/10.1148/radiol.2017161659",
        ),
        (
            "GL:aha-ich-2022",
            "Guideline for the management of patients with spontaneous intracerebral hemorrhage",
            2022,
            "American Heart Association / American Stroke Association",
            "https://www.ahajournals.org/doi/10.1161/STR.0000000000000407",
        ),
        (
            "GL:nice-head-injury-2023",
            "Head injury: assessment and early management",
            2023,
            "NICE guideline NG232",
            "https://www.nice.org.uk/guidance/ng232",
        ),
        (
            "GL:acr-appropriateness-headache",
            "ACR Appropriateness Criteria: headache",
            2019,
            "American College of Radiology",
            "https://acsearch.acr.org/list",
        ),
    ];
    pubmed
        .iter()
        .map(|(id, title, year, source)| Reference {
            id: (*id).into(),
            title: (*title).into(),
            year: Some(*year),
            source: (*source).into(),
            url: None,
        })
        .chain(
            guidelines
                .iter()
                .map(|(id, title, year, source, url)| Reference {
                    id: (*id).into(),
                    title: (*title).into(),
                    year: Some(*year),
                    source: (*source).into(),
                    url: Some((*url).into()),
                }),
        )
        .collect()
}

pub fn findings() -> Vec<Finding> {
    let f = |label: &str, p: f64, t: f64, urgency, decision, by: Option<&str>| Finding {
        label: label.into(),
        probability: p,
        threshold: t,
        positive: p >= t,
        urgency,
        decision,
        decided_by: by.map(Into::into),
        model: Some("ich-efficientnet-b0 demo 0.3.1".into()),
    };
    vec![
        f(
            "Intraparenchymal haemorrhage",
            0.912,
            0.5,
            Urgency::Stat,
            Decision::Accepted,
            Some("Dr Amara Okafor"),
        ),
        f(
            "Subdural haemorrhage",
            0.274,
            0.45,
            Urgency::Routine,
            Decision::Rejected,
            Some("Dr Amara Okafor"),
        ),
        f(
            "Intraventricular haemorrhage",
            0.633,
            0.5,
            Urgency::Urgent,
            Decision::Edited,
            Some("Dr Amara Okafor"),
        ),
        f(
            "Subarachnoid haemorrhage",
            0.081,
            0.4,
            Urgency::Routine,
            Decision::Pending,
            None,
        ),
    ]
}

/// The full case of the issue: two studies, overlays, ten references.
pub fn full_case(signed: bool, pseudonym: &str) -> ReportDocument {
    let t = |h| {
        Utc.with_ymd_and_hms(2026, 11, 23, h, 12, 0)
            .single()
            .expect("valid time")
    };
    ReportDocument {
        organisation: Organisation {
            name: "St Elsewhere University Hospital — Department of Radiology".into(),
            address_lines: vec![
                "1 Hospital Road, Springfield SP1 2AB".into(),
                "Tel. +44 20 7946 0000".into(),
            ],
        },
        patient_pseudonym: pseudonym.into(),
        case_title: "Head CT — sudden headache, suspected haemorrhage".into(),
        case_reference: Some("CASE-2026-00421".into()),
        studies: vec![
            Study {
                modality: "CT".into(),
                body_part: "Head".into(),
                date: NaiveDate::from_ymd_opt(2026, 11, 22),
                description: Some("CT head without contrast, 5 mm axial".into()),
            },
            Study {
                modality: "MR".into(),
                body_part: "Brain".into(),
                date: NaiveDate::from_ymd_opt(2026, 11, 23),
                description: Some("MRI brain, T1 / T2 / FLAIR / SWI".into()),
            },
        ],
        key_images: vec![
            KeyImage {
                caption: "Axial CT slice 23 of 40, brain window: hyperdense right frontal focus.".into(),
                image_png: phantom_png(256, 0),
                overlay_png: Some(overlay_png(256, 0)),
                legend: Some(Legend::ColourBar {
                    title: "Grad-CAM activation".into(),
                    colour_map: ColourMap::Jet,
                    min_label: "0.0 (low)".into(),
                    max_label: "1.0 (high)".into(),
                }),
            },
            KeyImage {
                caption: "Axial FLAIR, segmentation of the lesion and surrounding oedema.".into(),
                image_png: phantom_png(200, 1),
                overlay_png: Some(overlay_png(200, 1)),
                legend: Some(Legend::Classes {
                    entries: vec![
                        LegendEntry { label: "Haemorrhage".into(), rgb: [220, 40, 40] },
                        LegendEntry { label: "Perihaematomal oedema".into(), rgb: [250, 200, 40] },
                    ],
                }),
            },
        ],
        findings: findings(),
        sections: ReportSections {
            clinical_information: "Sudden severe headache for two hours, GCS 14. On apixaban.".into(),
            technique: "Non-contrast CT of the head, axial 5 mm reconstructions, followed by MRI of the brain. AI analysis with a calibrated haemorrhage classifier and Grad-CAM explanation [PMID:28965608].".into(),
            findings: "A 2.4 cm hyperdense focus in the right frontal lobe with a thin rim of oedema, consistent with acute intraparenchymal haemorrhage [PMID:30398430; PMID:31486294]. Small-volume blood layers in the occipital horn of the right lateral ventricle.\n\nNo extra-axial collection. No midline shift. The basal cisterns are patent.".into(),
            impression: "Acute right frontal intraparenchymal haemorrhage with intraventricular extension [GL:aha-ich-2022].".into(),
            recommendations: "Urgent neurosurgical and stroke review; reversal of anticoagulation per protocol [GL:aha-ich-2022]. Follow-up CT in 24 hours [GL:nice-head-injury-2023].".into(),
        },
        plain_language: Some("The scan shows a small bleed inside the brain on the right front side. This needs urgent care by the stroke and neurosurgery teams.".into()),
        references: reference_list(),
        models: vec![
            ModelInfo {
                name: "ich-efficientnet-b0".into(),
                version: "demo 0.3.1".into(),
                intended_use: "Triage of non-contrast head CT for intracranial haemorrhage.".into(),
                demo: true,
            },
            ModelInfo {
                name: "brats-segresnet".into(),
                version: "demo 0.2.0".into(),
                intended_use: "Segmentation of brain lesions on multi-sequence MRI.".into(),
                demo: true,
            },
        ],
        signature: signed.then(|| Signature {
            signed_by: "Dr Amara Okafor".into(),
            role: "Consultant neuroradiologist".into(),
            signed_at: t(3),
        }),
        addenda: if signed {
            vec![Addendum {
                author: "Dr Amara Okafor".into(),
                written_at: t(9),
                text: "Discussed with the stroke team at 04:05.".into(),
            }]
        } else {
            Vec::new()
        },
        generated_at: t(10),
    }
}

/// A long report: `paragraphs` paragraphs of findings text and `rows` findings.
pub fn long_case(paragraphs: usize, rows: usize) -> ReportDocument {
    let mut doc = full_case(false, "Long Report Patient");
    doc.sections.findings = (0..paragraphs)
        .map(|i| {
            format!(
                "Paragraph {i}: the ventricles are normal in size and configuration. There is no \
                 evidence of acute territorial infarction, mass effect or extra-axial collection. \
                 The grey–white matter differentiation is preserved throughout both hemispheres, \
                 and the posterior fossa structures are unremarkable [PMID:33152114]."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    doc.findings = (0..rows)
        .map(|i| Finding {
            label: format!("Finding row {i:02} with a label long enough to wrap in its column"),
            ..findings()[i % 4].clone()
        })
        .collect();
    doc
}

/// The benchmark's report: five A4 pages with four key images (six pictures of 512 × 512).
pub fn bench_case() -> ReportDocument {
    let mut doc = full_case(true, "Zoë Ångström");
    doc.key_images = (0..4)
        .map(|i| KeyImage {
            caption: format!("Key image {i}"),
            image_png: phantom_png(512, i),
            overlay_png: (i % 2 == 0).then(|| overlay_png(512, i)),
            legend: Some(Legend::ColourBar {
                title: "Grad-CAM activation".into(),
                colour_map: ColourMap::Inferno,
                min_label: "0".into(),
                max_label: "1".into(),
            }),
        })
        .collect();
    doc
}
