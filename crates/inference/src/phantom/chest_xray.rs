//! PA chest radiograph, brighter = more attenuation (MONOCHROME2), with
//! five findings.
//!
//! Built as a sum of attenuations, the way a projection image forms: body
//! soft tissue, air subtracted where the lungs are, heart and mediastinum,
//! abdomen under the diaphragm domes, lung vessel markings fanning out from
//! the hila, posterior ribs, clavicles and spine. A finding adds or removes
//! attenuation only where it is. An exposure curve, random per image and
//! independent of the findings, then maps attenuation to [0, 1], and noise
//! is added. The patient's right is on the image left, as radiographs are
//! displayed; the heart sits left of the midline in patient terms.

use std::f32::consts::{FRAC_PI_2, PI, TAU};

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::draw::{box_of, cover, normal, smoothstep, substream, uniform, Noise2, Wobble};
use super::{per_finding_probability, LesionBox};

/// Label order of [`ChestXray::labels`].
pub const CXR_LABELS: [&str; 5] = [
    "cardiomegaly",
    "effusion",
    "pneumothorax",
    "nodule",
    "consolidation",
];

const CARDIOMEGALY: usize = 0;
const EFFUSION: usize = 1;
const PNEUMOTHORAX: usize = 2;
const NODULE: usize = 3;
const CONSOLIDATION: usize = 4;

/// One synthetic chest radiograph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChestXray {
    /// Width and height in pixels.
    pub size: usize,
    /// [0, 1], row-major, `size * size`; brighter = more attenuation.
    pub pixels: Vec<f32>,
    /// Per [`CXR_LABELS`].
    pub labels: [bool; 5],
    /// One box per positive label: the heart (cardiomegaly), the fluid
    /// (effusion), the air and pleural line (pneumothorax), the nodule with
    /// its half-pixel rim, the patch (consolidation, where its haze is at
    /// least a fifth of full strength).
    pub boxes: Vec<LesionBox>,
}

/// A chest radiograph of `size` x `size` pixels; each finding present
/// independently with the probability that makes about `positive_rate` of
/// images abnormal. Sizes from 64 up look right.
pub fn chest_xray(rng: &mut StdRng, size: usize, positive_rate: f64) -> ChestXray {
    let p = per_finding_probability(positive_rate, 5);
    let present: [bool; 5] = std::array::from_fn(|_| rng.gen_bool(p));
    render(rng, size, present)
}

fn render(rng: &mut StdRng, size: usize, present: [bool; 5]) -> ChestXray {
    let n = size;
    let mut anatomy_rng = substream(rng);
    let mut noise_rng = substream(rng);
    let mut streams: Vec<StdRng> = (0..5).map(|_| substream(rng)).collect();
    let th = Thorax::sample(&mut anatomy_rng, n);
    let findings = Findings::sample(&th, &mut streams);

    let frames: Vec<(f32, f32)> = (0..n * n)
        .map(|i| th.frame((i % n) as f32 + 0.5, (i / n) as f32 + 0.5))
        .collect();
    let big = present[CARDIOMEGALY];
    let mut covs = vec![vec![0.0f32; n * n]; 5];
    let mut attenuation = vec![0.0f32; n * n];
    for (i, &(fx, fy)) in frames.iter().enumerate() {
        let (a, c) = th.attenuation(fx, fy, &findings, present, big);
        attenuation[i] = a;
        for (k, cov) in covs.iter_mut().enumerate() {
            cov[i] = c[k];
        }
    }

    let sigma = uniform(&mut noise_rng, 0.008, 0.02);
    let pixels = attenuation
        .iter()
        .map(|&a| {
            let v = (th.gain * a + th.offset).clamp(0.0, 1.0).powf(th.gamma);
            (v + sigma * normal(&mut noise_rng)).clamp(0.0, 1.0)
        })
        .collect();

    let mut labels = [false; 5];
    let mut boxes = Vec::new();
    for (k, cov) in covs.iter().enumerate() {
        if !present[k] {
            continue;
        }
        let threshold = match k {
            NODULE => f32::MIN_POSITIVE,
            CONSOLIDATION => 0.2,
            _ => 0.5,
        };
        if let Some((b, _)) = box_of(cov, n, threshold, threshold, k) {
            labels[k] = true;
            boxes.push(b);
        }
    }
    ChestXray {
        size,
        pixels,
        labels,
        boxes,
    }
}

/// A lung's outline before the diaphragm and mediastinum cut it: a
/// superellipse, rounder at the apex, squarer at the base.
#[derive(Debug, Clone)]
struct Egg {
    side: f32,
    cx: f32,
    cy: f32,
    hw: f32,
    hh: f32,
}

impl Egg {
    fn q(&self, dx: f32, dy: f32) -> f32 {
        let p = if dy < 0.0 { 2.2 } else { 3.5 };
        ((dx.abs() / self.hw).powf(p) + (dy.abs() / self.hh).powf(p)).powf(1.0 / p)
    }

    fn sd(&self, fx: f32, fy: f32) -> f32 {
        (self.q(fx - self.cx, fy - self.cy) - 1.0) * self.hw
    }
}

#[derive(Debug, Clone, Copy)]
struct Ellipse {
    cx: f32,
    cy: f32,
    hw: f32,
    hh: f32,
}

impl Ellipse {
    fn sd(&self, fx: f32, fy: f32) -> f32 {
        let q = ((fx - self.cx) / self.hw).hypot((fy - self.cy) / self.hh);
        (q - 1.0) * self.hw.min(self.hh)
    }
}

#[derive(Debug, Clone)]
struct Thorax {
    n: f32,
    cos: f32,
    sin: f32,
    xc: f32,
    hw_t: f32,
    y_apex: f32,
    body_hw: f32,
    neck_hw: f32,
    y_shoulder: f32,
    /// Per side, index 0 = image left (patient right).
    dome: [f32; 2],
    dome_x: [f32; 2],
    cp_depth: [f32; 2],
    lungs: [Egg; 2],
    heart: Ellipse,
    heart_big: Ellipse,
    med_x: f32,
    med_hw: f32,
    knob: Ellipse,
    hila: [(f32, f32); 2],
    vessel_freq: f32,
    rib_y0: f32,
    rib_spacing: f32,
    rib_hw: f32,
    clavicle_y: f32,
    soft: f32,
    abdomen: f32,
    air: f32,
    heart_extra: f32,
    med_extra: f32,
    rib_amp: f32,
    marking_amp: f32,
    spine_amp: f32,
    bubble: Option<Ellipse>,
    texture: Noise2,
    gain: f32,
    offset: f32,
    gamma: f32,
}

impl Thorax {
    fn sample(rng: &mut StdRng, n: usize) -> Thorax {
        let nf = n as f32;
        let angle = uniform(rng, -0.06, 0.06);
        let xc = nf * (0.5 + uniform(rng, -0.03, 0.03));
        let hw_t = nf * uniform(rng, 0.34, 0.41);
        let y_apex = nf * uniform(rng, 0.08, 0.15);
        let dome_base = nf * uniform(rng, 0.66, 0.76);
        // The right hemidiaphragm (image left) sits higher.
        let dome = [dome_base - nf * uniform(rng, 0.01, 0.03), dome_base];
        let dome_x = [xc - 0.5 * hw_t, xc + 0.5 * hw_t].map(|x| x + nf * uniform(rng, -0.02, 0.02));
        let cp_depth = [0, 1].map(|_| nf * uniform(rng, 0.06, 0.1));
        let gap = nf * 0.02;
        let lungs = [-1.0f32, 1.0].map(|side| {
            let s = usize::from(side > 0.0);
            Egg {
                side,
                cx: xc + side * (hw_t + gap) / 2.0,
                cy: dome[s],
                hw: (hw_t - gap) / 2.0,
                hh: dome[s] - y_apex,
            }
        });
        // Heart: its right border (image left) at xc - f * width; the same
        // shape whatever its size, so the enlarged heart contains the normal.
        let f = uniform(rng, 0.3, 0.36);
        let aspect = uniform(rng, 0.72, 0.85);
        let heart_at = |ctr: f32| {
            let w = ctr * 2.0 * hw_t;
            let hh = w / 2.0 * aspect;
            Ellipse {
                cx: xc + (0.5 - f) * w,
                cy: dome[1] - 0.2 * hh,
                hw: w / 2.0,
                hh,
            }
        };
        let heart = heart_at(uniform(rng, 0.4, 0.48));
        let heart_big = heart_at(uniform(rng, 0.56, 0.66));
        let med_x = xc + nf * 0.01;
        let med_hw = nf * uniform(rng, 0.065, 0.085);
        let lung_h = dome_base - y_apex;
        let knob = Ellipse {
            cx: med_x + med_hw + nf * 0.005,
            cy: y_apex + lung_h * uniform(rng, 0.15, 0.22),
            hw: nf * uniform(rng, 0.025, 0.035),
            hh: nf * uniform(rng, 0.025, 0.035),
        };
        let hila = [-1.0f32, 1.0].map(|side| {
            (
                xc + side * hw_t * uniform(rng, 0.25, 0.32),
                y_apex + lung_h * uniform(rng, 0.4, 0.5),
            )
        });
        let rib_spacing = lung_h / 8.5 * uniform(rng, 0.95, 1.05);
        let bubble = rng.gen_bool(0.6).then(|| Ellipse {
            cx: dome_x[1] + nf * uniform(rng, -0.02, 0.04),
            cy: dome[1] + nf * uniform(rng, 0.05, 0.08),
            hw: nf * uniform(rng, 0.035, 0.06),
            hh: nf * uniform(rng, 0.02, 0.035),
        });
        Thorax {
            n: nf,
            cos: angle.cos(),
            sin: angle.sin(),
            xc,
            hw_t,
            y_apex,
            body_hw: hw_t + nf * uniform(rng, 0.04, 0.07),
            neck_hw: nf * uniform(rng, 0.1, 0.14),
            y_shoulder: y_apex + nf * uniform(rng, -0.02, 0.02),
            dome,
            dome_x,
            cp_depth,
            lungs,
            heart,
            heart_big,
            med_x,
            med_hw,
            knob,
            hila,
            vessel_freq: uniform(rng, 24.0, 36.0),
            rib_y0: y_apex + rib_spacing * uniform(rng, 0.0, 0.5),
            rib_spacing,
            rib_hw: (0.17 * rib_spacing).max(0.6),
            clavicle_y: y_apex + nf * uniform(rng, 0.0, 0.04),
            soft: uniform(rng, 0.45, 0.55),
            abdomen: uniform(rng, 0.12, 0.2),
            air: uniform(rng, 0.25, 0.32),
            heart_extra: uniform(rng, 0.2, 0.28),
            med_extra: uniform(rng, 0.15, 0.22),
            rib_amp: uniform(rng, 0.03, 0.05),
            marking_amp: uniform(rng, 0.05, 0.08),
            spine_amp: uniform(rng, 0.03, 0.06),
            bubble,
            texture: Noise2::new(rng, n, n, (nf / 12.0).max(2.0)),
            gain: uniform(rng, 0.9, 1.1),
            offset: uniform(rng, -0.04, 0.04),
            gamma: uniform(rng, 0.85, 1.15),
        }
    }

    /// Patient frame coordinates of image point (x, y): the patient is
    /// rotated a few degrees about the image centre.
    fn frame(&self, x: f32, y: f32) -> (f32, f32) {
        let c = self.n / 2.0;
        let (dx, dy) = (x - c, y - c);
        (
            c + dx * self.cos + dy * self.sin,
            c - dx * self.sin + dy * self.cos,
        )
    }

    /// Diaphragm height at `fx` (larger = lower), the two domes blended
    /// under the heart.
    fn diaphragm(&self, fx: f32) -> f32 {
        let dome = |s: usize| {
            let t = (fx - self.dome_x[s]) / (0.5 * self.hw_t);
            self.dome[s] + self.cp_depth[s] * t * t
        };
        let w = smoothstep(self.xc - 0.05 * self.n, self.xc + 0.05 * self.n, fx);
        dome(0) + (dome(1) - dome(0)) * w
    }

    fn above_diaphragm(&self, fx: f32, fy: f32) -> f32 {
        cover(fy - self.diaphragm(fx))
    }

    fn heart_cov(&self, fx: f32, fy: f32, big: bool) -> f32 {
        let h = if big { self.heart_big } else { self.heart };
        cover(h.sd(fx, fy)) * self.above_diaphragm(fx, fy)
    }

    fn mediastinum_cov(&self, fx: f32, fy: f32) -> f32 {
        let band = cover((fx - self.med_x).abs() - self.med_hw);
        band.max(cover(self.knob.sd(fx, fy))) * self.above_diaphragm(fx, fy)
    }

    /// Aerated lung of side `s` (0 = image left).
    fn lung_cov(&self, s: usize, fx: f32, fy: f32, big: bool) -> f32 {
        let egg = cover(self.lungs[s].sd(fx, fy));
        if egg <= 0.0 {
            return 0.0;
        }
        egg * self.above_diaphragm(fx, fy)
            * (1.0 - self.heart_cov(fx, fy, big))
            * (1.0 - self.mediastinum_cov(fx, fy))
    }

    /// Vessel markings fanning out from the hilum of side `s`.
    fn markings(&self, s: usize, fx: f32, fy: f32) -> f32 {
        let (hx, hy) = self.hila[s];
        let (dx, dy) = (fx - hx, fy - hy);
        let dist = dx.hypot(dy);
        let lung_h = self.dome[s] - self.y_apex;
        let wavy = 3.0 * self.texture.at(fx, fy);
        let streak = (self.vessel_freq * dy.atan2(dx) + wavy).cos().max(0.0);
        let sharp = 4.0 + 12.0 * (dist / lung_h).min(1.0);
        let fade = (-dist / (0.45 * lung_h)).exp();
        let hilum = (-(dist / (0.05 * self.n)).powi(2)).exp();
        self.marking_amp
            * (fade * (0.7 * streak.powf(sharp) + 0.3 * (0.5 + 0.5 * self.texture.at(fy, fx)))
                + 1.2 * hilum)
    }

    fn ribs(&self, fx: f32, fy: f32) -> f32 {
        let u = (fx - self.xc).abs() / self.hw_t;
        if u > 1.1 {
            return 0.0;
        }
        // Posterior ribs: out from the spine, rising a little, then
        // curving down towards the lateral chest wall.
        let curve = self.rib_spacing * (-0.8 * u + 2.0 * u * u);
        let j = ((fy - self.rib_y0 - curve) / self.rib_spacing).round();
        let mut best = f32::MAX;
        for k in [j - 1.0, j, j + 1.0] {
            if !(-1.0..=11.0).contains(&k) {
                continue;
            }
            let yc = self.rib_y0 + k * self.rib_spacing + curve;
            best = best.min((fy - yc).abs());
        }
        self.rib_amp * cover(best - self.rib_hw) * (1.0 - smoothstep(1.0, 1.1, u))
    }

    fn clavicles(&self, fx: f32, fy: f32) -> f32 {
        let mut best = f32::MAX;
        for side in [-1.0f32, 1.0] {
            let (x0, y0) = (self.xc + side * 0.05 * self.n, self.clavicle_y);
            let (x1, y1) = (
                self.xc + side * 1.02 * self.hw_t,
                self.clavicle_y - 0.05 * self.n,
            );
            let (vx, vy) = (x1 - x0, y1 - y0);
            let t = (((fx - x0) * vx + (fy - y0) * vy) / (vx * vx + vy * vy)).clamp(0.0, 1.0);
            best = best.min((fx - x0 - t * vx).hypot(fy - y0 - t * vy));
        }
        0.08 * cover(best - (0.014 * self.n).max(0.7))
    }

    fn body_cov(&self, fx: f32, fy: f32) -> (f32, f32) {
        let neck = smoothstep(self.y_shoulder - 0.12 * self.n, self.y_shoulder, fy);
        let hw = self.neck_hw + (self.body_hw - self.neck_hw) * neck;
        let dx = (fx - self.xc).abs();
        let thick = 0.8 + 0.2 * (1.0 - (dx / hw).min(1.0).powi(2)).sqrt();
        (cover(dx - hw), thick)
    }

    /// Attenuation at frame point (fx, fy) and each finding's coverage there.
    fn attenuation(
        &self,
        fx: f32,
        fy: f32,
        f: &Findings,
        present: [bool; 5],
        big: bool,
    ) -> (f32, [f32; 5]) {
        let (body, thick) = self.body_cov(fx, fy);
        let below = 1.0 - self.above_diaphragm(fx, fy);
        let heart = self.heart_cov(fx, fy, big);
        let med = self.mediastinum_cov(fx, fy);
        let mut a = 0.04 + (self.soft * thick - 0.04) * body;
        a += self.abdomen * below * body;
        if let Some(b) = &self.bubble {
            a -= 0.25 * cover(b.sd(fx, fy)) * below;
        }
        a += self.heart_extra * heart + self.med_extra * med * (1.0 - heart);
        // Ribs fade over the dense upper abdomen.
        let ribs = self.ribs(fx, fy) * body * (1.0 - 0.6 * below);
        a += ribs
            + self.clavicles(fx, fy)
            + self.spine_amp * cover((fx - self.xc).abs() - 0.045 * self.n) * body;

        let mut cov = [0.0f32; 5];
        cov[CARDIOMEGALY] = self.heart_cov(fx, fy, true);
        for s in 0..2 {
            let lung = self.lung_cov(s, fx, fy, big);
            if lung <= 0.0 {
                continue;
            }
            let marks = self.markings(s, fx, fy);
            a += lung * (marks - self.air);
            let fluid = f.effusion.cov(self, s, fx, fy, lung);
            let (air, line) = f.pneumothorax.cov(self, s, fx, fy, lung);
            let patch = f.consolidation.cov(self, s, fx, fy, lung);
            // Boxes are drawn on the finding's own extent: a pixel the lung
            // only partly fills still counts, as the pixel does change.
            let (air_x, line_x) = f.pneumothorax.cov(self, s, fx, fy, 1.0);
            cov[EFFUSION] = cov[EFFUSION].max(f.effusion.cov(self, s, fx, fy, 1.0));
            cov[PNEUMOTHORAX] = cov[PNEUMOTHORAX].max(air_x.max(line_x));
            cov[CONSOLIDATION] = cov[CONSOLIDATION].max(f.consolidation.cov(self, s, fx, fy, 1.0));
            if present[EFFUSION] {
                a += fluid * (self.air - marks + 0.8 * self.abdomen);
            }
            if present[PNEUMOTHORAX] {
                // No vessels and no ribs over the free air (as asked for
                // these phantoms; on real films the ribs stay visible).
                a -= air * (marks + f.pneumothorax.drop) + air * ribs;
                a += f.pneumothorax.line_amp * line;
            }
            if present[CONSOLIDATION] {
                a += patch * (f.consolidation.amp - 0.5 * marks);
            }
        }
        let nodule = f.nodule.cov(fx, fy);
        cov[NODULE] = nodule;
        if present[NODULE] {
            a += f.nodule.amp * nodule;
        }
        (a, cov)
    }
}

#[derive(Debug, Clone)]
struct Effusion {
    side: usize,
    level: f32,
    meniscus: f32,
    soft: f32,
}

impl Effusion {
    fn cov(&self, th: &Thorax, s: usize, fx: f32, fy: f32, lung: f32) -> f32 {
        if s != self.side {
            return 0.0;
        }
        let side = th.lungs[s].side;
        let x_med = th.xc + side * 0.1 * th.hw_t;
        let lateral = ((fx - x_med) * side / (0.9 * th.hw_t)).clamp(0.0, 1.0);
        let top = self.level - self.meniscus * lateral * lateral;
        lung * smoothstep(top - self.soft, top + self.soft, fy)
    }
}

#[derive(Debug, Clone)]
struct Pneumothorax {
    side: usize,
    /// Sector in the lung's own angle (0 lateral, -pi/2 apex).
    from: f32,
    to: f32,
    depth: f32,
    drop: f32,
    line_amp: f32,
}

impl Pneumothorax {
    /// (free air, pleural line) coverage.
    fn cov(&self, th: &Thorax, s: usize, fx: f32, fy: f32, lung: f32) -> (f32, f32) {
        if s != self.side {
            return (0.0, 0.0);
        }
        let egg = &th.lungs[s];
        let (dx, dy) = (fx - egg.cx, fy - egg.cy);
        let psi = dy.atan2(dx * egg.side);
        let t = (psi - self.from) / (self.to - self.from);
        if !(0.0..=1.0).contains(&t) {
            return (0.0, 0.0);
        }
        let d = self.depth * (PI * t).sin().powf(0.6);
        let q = egg.q(dx, dy).max(1e-3);
        let depth = dx.hypot(dy) * (1.0 - q) / q;
        let air = lung * cover(depth - d);
        let line = if d > 0.8 {
            lung * (1.0 - (depth - d).powi(2)).max(0.0)
        } else {
            0.0
        };
        (air, line)
    }
}

#[derive(Debug, Clone)]
struct Nodule {
    fx: f32,
    fy: f32,
    radius: f32,
    amp: f32,
}

impl Nodule {
    /// Projected thickness of a sphere, 0 beyond half a pixel out.
    fn cov(&self, fx: f32, fy: f32) -> f32 {
        let r = (fx - self.fx).hypot(fy - self.fy) / (self.radius + 0.5);
        (1.0 - r * r).max(0.0).sqrt()
    }
}

#[derive(Debug, Clone)]
struct Consolidation {
    side: usize,
    fx: f32,
    fy: f32,
    radius: f32,
    aspect: f32,
    wobble: Wobble,
    mottle: Noise2,
    amp: f32,
}

impl Consolidation {
    fn cov(&self, _th: &Thorax, s: usize, fx: f32, fy: f32, lung: f32) -> f32 {
        if s != self.side {
            return 0.0;
        }
        let (dx, dy) = (fx - self.fx, (fy - self.fy) / self.aspect);
        let rho = dx.hypot(dy) / (self.radius * (1.0 + self.wobble.at(dy.atan2(dx))));
        let haze = 1.0 - smoothstep(0.55, 1.0, rho);
        lung * haze * (0.75 + 0.25 * self.mottle.at(fx, fy))
    }
}

/// Every finding's parameters, drawn whether or not it is present.
#[derive(Debug, Clone)]
struct Findings {
    effusion: Effusion,
    pneumothorax: Pneumothorax,
    nodule: Nodule,
    consolidation: Consolidation,
}

impl Findings {
    fn sample(th: &Thorax, streams: &mut [StdRng]) -> Findings {
        let nf = th.n;
        let rng = &mut streams[EFFUSION];
        let side = rng.gen_range(0..2usize);
        let lung_h = th.dome[side] - th.y_apex;
        let cp = th.dome[side] + th.cp_depth[side];
        let effusion = Effusion {
            side,
            level: cp - lung_h * uniform(rng, 0.1, 0.3) - 0.02 * nf,
            meniscus: nf * uniform(rng, 0.03, 0.08),
            soft: (0.012 * nf).max(0.7),
        };

        let rng = &mut streams[PNEUMOTHORAX];
        let pneumothorax = Pneumothorax {
            side: rng.gen_range(0..2usize),
            from: -FRAC_PI_2 - 0.45,
            to: uniform(rng, -0.5, 0.35),
            depth: (nf * uniform(rng, 0.035, 0.09)).max(2.0),
            drop: uniform(rng, 0.08, 0.14),
            line_amp: uniform(rng, 0.04, 0.07),
        };

        // Nodules and consolidation go in lung that stays aerated whatever
        // else is drawn: clear of the enlarged heart and of where the
        // effusion and pneumothorax would be.
        let clear = |fx: f32, fy: f32, s: usize| {
            let lung = th.lung_cov(s, fx, fy, true);
            lung >= 0.99
                && effusion.cov(th, s, fx, fy, lung) <= 0.0
                && pneumothorax.cov(th, s, fx, fy, lung) == (0.0, 0.0)
        };
        let place = |rng: &mut StdRng, reach: f32| {
            let mut best = (0usize, 0usize, th.lungs[0].cx, th.lungs[0].cy);
            for _ in 0..100 {
                let s = rng.gen_range(0..2usize);
                let egg = &th.lungs[s];
                let fx = egg.cx + uniform(rng, -egg.hw, egg.hw);
                let fy = uniform(rng, th.y_apex, th.dome[s]);
                let ok = (0..8)
                    .map(|k| {
                        let a = k as f32 * TAU / 8.0;
                        (fx + reach * a.cos(), fy + reach * a.sin())
                    })
                    .chain([(fx, fy)])
                    .filter(|&(x, y)| clear(x, y, s))
                    .count();
                if ok > best.0 {
                    best = (ok, s, fx, fy);
                }
                if ok == 9 {
                    break;
                }
            }
            (best.1, best.2, best.3)
        };

        let rng = &mut streams[NODULE];
        let radius = (nf * uniform(rng, 0.02, 0.05)).max(1.5);
        let (_, fx, fy) = place(rng, radius + 1.5);
        let nodule = Nodule {
            fx,
            fy,
            radius,
            amp: uniform(rng, 0.15, 0.3),
        };

        let rng = &mut streams[CONSOLIDATION];
        let radius = (nf * uniform(rng, 0.06, 0.12)).max(3.0);
        let (side, fx, fy) = place(rng, 0.5 * radius);
        let consolidation = Consolidation {
            side,
            fx,
            fy,
            radius,
            aspect: uniform(rng, 0.7, 1.3),
            wobble: Wobble::new(rng, 0.15, 4),
            mottle: Noise2::new(rng, th.n as usize, th.n as usize, (radius / 2.0).max(1.5)),
            amp: uniform(rng, 0.15, 0.28),
        };
        Findings {
            effusion,
            pneumothorax,
            nodule,
            consolidation,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::draw::test_util::{max_diff_outside, mean_in};
    use super::*;

    #[test]
    fn same_seed_same_image() {
        for seed in 0..4 {
            let a = chest_xray(&mut StdRng::seed_from_u64(seed), 64, 0.5);
            let b = chest_xray(&mut StdRng::seed_from_u64(seed), 64, 0.5);
            assert_eq!(a, b);
        }
        let a = chest_xray(&mut StdRng::seed_from_u64(1), 64, 0.5);
        let b = chest_xray(&mut StdRng::seed_from_u64(2), 64, 0.5);
        assert_ne!(a.pixels, b.pixels);
    }

    #[test]
    fn labels_and_boxes_agree() {
        let mut rng = StdRng::seed_from_u64(21);
        let total = 200;
        let mut counts = [0usize; 5];
        let mut normal_images = 0;
        for i in 0..total {
            let size = [64, 96, 128][i % 3];
            let x = chest_xray(&mut rng, size, 0.6);
            assert_eq!(x.pixels.len(), size * size);
            assert!(x.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
            normal_images += usize::from(!x.labels.iter().any(|&l| l));
            for (k, &on) in x.labels.iter().enumerate() {
                counts[k] += usize::from(on);
                let boxes: Vec<_> = x.boxes.iter().filter(|b| b.label == k).collect();
                assert_eq!(on, boxes.len() == 1, "{}", CXR_LABELS[k]);
                for b in boxes {
                    assert!(b.x0 < b.x1 && b.y0 < b.y1 && b.x1 <= size && b.y1 <= size);
                }
            }
        }
        let rate = 1.0 - normal_images as f64 / total as f64;
        assert!((0.5..0.7).contains(&rate), "abnormal rate {rate}");
        for (k, &c) in counts.iter().enumerate() {
            assert!(c >= 15, "{} only {c}", CXR_LABELS[k]);
        }
    }

    /// Each finding changes pixels only in (or within a few pixels of) its
    /// box, and is visible there.
    #[test]
    fn each_finding_is_local_and_visible() {
        for seed in 0..40u64 {
            let size = [64, 128][seed as usize % 2];
            let margin = (size / 32).max(2);
            for k in 0..5 {
                let mut present = [false; 5];
                present[k] = true;
                // Another finding alongside, to check they do not interact.
                present[(k + 1 + seed as usize % 4) % 5] = seed % 3 == 0;
                let state = StdRng::seed_from_u64(seed);
                let with = render(&mut state.clone(), size, present);
                let mut off = present;
                off[k] = false;
                let without = render(&mut state.clone(), size, off);
                assert!(with.labels[k], "seed {seed} {}", CXR_LABELS[k]);
                let own: Vec<_> = with
                    .boxes
                    .iter()
                    .copied()
                    .filter(|b| b.label == k)
                    .collect();
                let outside = max_diff_outside(&with.pixels, &without.pixels, size, &own, margin);
                assert_eq!(
                    outside, 0.0,
                    "seed {seed} {} changes pixels outside its box",
                    CXR_LABELS[k]
                );

                // The finding shows: some pixels change clearly, and the
                // box on average moves the right way.
                let b = own[0];
                let (mut lo, mut hi, mut sum, mut count) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                for y in b.y0..b.y1 {
                    for x in b.x0..b.x1 {
                        let d = with.pixels[y * size + x] - without.pixels[y * size + x];
                        lo = lo.min(d);
                        hi = hi.max(d);
                        sum += d;
                        count += 1.0;
                    }
                }
                let mean = sum / count;
                if k == PNEUMOTHORAX {
                    assert!(
                        lo < -0.06 && mean < 0.0,
                        "seed {seed} pneumothorax {lo} {mean}"
                    );
                } else {
                    assert!(
                        hi > 0.08 && mean > 0.0,
                        "seed {seed} {} {hi} {mean}",
                        CXR_LABELS[k]
                    );
                }
            }
        }
    }

    #[test]
    fn nodule_brighter_than_surrounding_lung() {
        for seed in 0..30u64 {
            let size = 96;
            let mut present = [false; 5];
            present[NODULE] = true;
            let state = StdRng::seed_from_u64(seed);
            let x = render(&mut state.clone(), size, present);
            let b = x.boxes[0];
            let inner = LesionBox {
                x0: b.x0 + b.width() / 4,
                y0: b.y0 + b.height() / 4,
                x1: b.x1 - b.width() / 4,
                y1: b.y1 - b.height() / 4,
                ..b
            };
            let ring = LesionBox {
                x0: b.x0.saturating_sub(4),
                y0: b.y0.saturating_sub(4),
                x1: (b.x1 + 4).min(size),
                y1: (b.y1 + 4).min(size),
                ..b
            };
            let centre = mean_in(&x.pixels, size, &inner, |_| true);
            let around = mean_in(&x.pixels, size, &ring, |i| !b.contains(i % size, i / size));
            assert!(
                centre > around + 0.08,
                "seed {seed}: nodule {centre} lung {around}"
            );
        }
    }

    #[test]
    fn heart_size_separates_cardiomegaly() {
        for seed in 0..40u64 {
            let mut anatomy = substream(&mut StdRng::seed_from_u64(seed));
            let th = Thorax::sample(&mut anatomy, 128);
            let normal = th.heart.hw / th.hw_t;
            let big = th.heart_big.hw / th.hw_t;
            assert!((0.4..=0.48).contains(&normal), "normal CTR {normal}");
            assert!((0.56..=0.66).contains(&big), "enlarged CTR {big}");
            let mut present = [false; 5];
            present[CARDIOMEGALY] = true;
            let x = render(&mut StdRng::seed_from_u64(seed), 128, present);
            let b = x.boxes[0];
            let ratio = b.width() as f32 / (2.0 * th.hw_t);
            assert!(ratio > 0.53, "seed {seed}: box width ratio {ratio}");
        }
    }

    #[test]
    fn effusion_fills_the_costophrenic_angle() {
        for seed in 0..20u64 {
            let mut state = StdRng::seed_from_u64(seed);
            let mut probe = state.clone();
            let mut anatomy = substream(&mut probe);
            let th = Thorax::sample(&mut anatomy, 128);
            let _noise = substream(&mut probe);
            let mut streams: Vec<StdRng> = (0..5).map(|_| substream(&mut probe)).collect();
            let f = Findings::sample(&th, &mut streams);
            let s = f.effusion.side;
            let side = th.lungs[s].side;
            // A point just inside the lateral costophrenic recess.
            let fx = th.xc + side * (th.hw_t - 0.03 * th.n);
            let fy = th.diaphragm(fx) - 0.02 * th.n;
            let lung = th.lung_cov(s, fx, fy, false);
            assert!(lung > 0.9, "seed {seed}: probe not in lung");
            assert!(
                f.effusion.cov(&th, s, fx, fy, lung) > 0.9,
                "seed {seed}: angle not filled"
            );
            let _ = render(&mut state, 64, [false, true, false, false, false]);
        }
    }
}
