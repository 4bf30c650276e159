//! The 3D and depthwise convolutions against naive loops on random shapes,
//! and against PyTorch's own results (fixtures/parity/ops.safetensors).

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use candle_core::{Device, Tensor};
use inference::ops::{
    conv3d, conv_transpose3d, depthwise_conv2d, resize_bilinear, upsample_trilinear3d,
};
use rand::{Rng, SeedableRng};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// out[n,o,z,y,x] = b[o] + Σ x[n,c,z·s+i-p, y·s+j-p, x·s+k-p] · w[o,c,i,j,k]
#[allow(clippy::too_many_arguments)]
fn naive_conv3d(
    x: &[f32],
    xs: [usize; 5],
    w: &[f32],
    ws: [usize; 5],
    b: &[f32],
    s: usize,
    p: usize,
) -> (Vec<f32>, [usize; 5]) {
    let [n, c, d, h, wd] = xs;
    let [o, _, kd, kh, kw] = ws;
    let od = (d + 2 * p - kd) / s + 1;
    let oh = (h + 2 * p - kh) / s + 1;
    let ow = (wd + 2 * p - kw) / s + 1;
    let mut out = vec![0f32; n * o * od * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            for z in 0..od {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = b[oi];
                        for ci in 0..c {
                            for i in 0..kd {
                                for j in 0..kh {
                                    for k in 0..kw {
                                        let zz = (z * s + i) as isize - p as isize;
                                        let yy = (y * s + j) as isize - p as isize;
                                        let xi = (xx * s + k) as isize - p as isize;
                                        if zz < 0
                                            || yy < 0
                                            || xi < 0
                                            || zz >= d as isize
                                            || yy >= h as isize
                                            || xi >= wd as isize
                                        {
                                            continue;
                                        }
                                        let xv = x[(((ni * c + ci) * d + zz as usize) * h
                                            + yy as usize)
                                            * wd
                                            + xi as usize];
                                        let wv = w[(((oi * c + ci) * kd + i) * kh + j) * kw + k];
                                        acc += xv * wv;
                                    }
                                }
                            }
                        }
                        out[(((ni * o + oi) * od + z) * oh + y) * ow + xx] = acc;
                    }
                }
            }
        }
    }
    (out, [n, o, od, oh, ow])
}

/// Scatter form: every input voxel adds x·w to out[z·s+i-p, …].
#[allow(clippy::too_many_arguments)]
fn naive_conv_transpose3d(
    x: &[f32],
    xs: [usize; 5],
    w: &[f32],
    ws: [usize; 5],
    b: &[f32],
    s: usize,
    p: usize,
    op: usize,
) -> (Vec<f32>, [usize; 5]) {
    let [n, c, d, h, wd] = xs;
    let [_, o, kd, kh, kw] = ws;
    let od = (d - 1) * s + kd + op - 2 * p;
    let oh = (h - 1) * s + kh + op - 2 * p;
    let ow = (wd - 1) * s + kw + op - 2 * p;
    let mut out = vec![0f32; n * o * od * oh * ow];
    for ni in 0..n {
        for oi in 0..o {
            for v in
                out[((ni * o + oi) * od * oh * ow)..((ni * o + oi + 1) * od * oh * ow)].iter_mut()
            {
                *v = b[oi];
            }
        }
        for ci in 0..c {
            for z in 0..d {
                for y in 0..h {
                    for xx in 0..wd {
                        let xv = x[(((ni * c + ci) * d + z) * h + y) * wd + xx];
                        for oi in 0..o {
                            for i in 0..kd {
                                for j in 0..kh {
                                    for k in 0..kw {
                                        let zz = (z * s + i) as isize - p as isize;
                                        let yy = (y * s + j) as isize - p as isize;
                                        let xi = (xx * s + k) as isize - p as isize;
                                        if zz < 0
                                            || yy < 0
                                            || xi < 0
                                            || zz >= od as isize
                                            || yy >= oh as isize
                                            || xi >= ow as isize
                                        {
                                            continue;
                                        }
                                        let wv = w[(((ci * o + oi) * kd + i) * kh + j) * kw + k];
                                        out[(((ni * o + oi) * od + zz as usize) * oh
                                            + yy as usize)
                                            * ow
                                            + xi as usize] += xv * wv;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (out, [n, o, od, oh, ow])
}

fn random(rng: &mut rand::rngs::StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn conv3d_equals_the_naive_loop_on_random_shapes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for round in 0..24 {
        let n = rng.gen_range(1..3);
        let c = rng.gen_range(1..5);
        let o = rng.gen_range(1..5);
        let k = [1, 2, 3, 5][rng.gen_range(0..4)];
        let s = rng.gen_range(1..3);
        let p = rng.gen_range(0..=k / 2);
        let d = rng.gen_range(k.max(2)..9);
        let h = rng.gen_range(k.max(2)..9);
        let w = rng.gen_range(k.max(2)..9);
        let xs = [n, c, d, h, w];
        let ws = [o, c, k, k, k];
        let x = random(&mut rng, xs.iter().product());
        let wt = random(&mut rng, ws.iter().product());
        let b = random(&mut rng, o);
        let (want, shape) = naive_conv3d(&x, xs, &wt, ws, &b, s, p);
        let dev = Device::Cpu;
        let got = conv3d(
            &Tensor::from_vec(x, &xs, &dev).unwrap(),
            &Tensor::from_vec(wt, &ws, &dev).unwrap(),
            Some(&Tensor::from_vec(b, o, &dev).unwrap()),
            s,
            p,
        )
        .unwrap();
        let want = Tensor::from_vec(want, &shape, &dev).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff < 1e-4,
            "round {round}: x {xs:?} w {ws:?} s {s} p {p}: diff {diff}"
        );
    }
}

#[test]
fn conv_transpose3d_equals_the_naive_loop_on_random_shapes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    for round in 0..24 {
        let n = rng.gen_range(1..3);
        let c = rng.gen_range(1..4);
        let o = rng.gen_range(1..4);
        let k: usize = rng.gen_range(1..4);
        let s = rng.gen_range(1..3);
        let p = rng.gen_range(0..k.div_ceil(2));
        let op = if s > 1 { rng.gen_range(0..s) } else { 0 };
        let xs = [
            n,
            c,
            rng.gen_range(1..5),
            rng.gen_range(1..5),
            rng.gen_range(1..5),
        ];
        let ws = [c, o, k, k, k];
        // Output sides must stay positive.
        if (xs[2].min(xs[3]).min(xs[4]) - 1) * s + k + op <= 2 * p {
            continue;
        }
        let x = random(&mut rng, xs.iter().product());
        let wt = random(&mut rng, ws.iter().product());
        let b = random(&mut rng, o);
        let (want, shape) = naive_conv_transpose3d(&x, xs, &wt, ws, &b, s, p, op);
        let dev = Device::Cpu;
        let got = conv_transpose3d(
            &Tensor::from_vec(x, &xs, &dev).unwrap(),
            &Tensor::from_vec(wt, &ws, &dev).unwrap(),
            Some(&Tensor::from_vec(b, o, &dev).unwrap()),
            s,
            p,
            op,
        )
        .unwrap();
        let want = Tensor::from_vec(want, &shape, &dev).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(
            diff < 1e-4,
            "round {round}: x {xs:?} w {ws:?} s {s} p {p} op {op}: diff {diff}"
        );
    }
}

#[test]
fn depthwise_conv2d_equals_candles_grouped_convolution() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..20 {
        let c = rng.gen_range(1..7);
        let k = [1, 3, 5][rng.gen_range(0..3)];
        let s = rng.gen_range(1..3);
        let p = rng.gen_range(0..=k / 2);
        let h = rng.gen_range(k..12);
        let w = rng.gen_range(k..12);
        let dev = Device::Cpu;
        let x = Tensor::from_vec(random(&mut rng, 2 * c * h * w), (2, c, h, w), &dev).unwrap();
        let wt = Tensor::from_vec(random(&mut rng, c * k * k), (c, 1, k, k), &dev).unwrap();
        let want = x.conv2d(&wt, p, s, 1, c).unwrap();
        // The CPU kernel (plain tensors) and the differentiable path
        // (tracked tensors, as in training) must both agree.
        let got = depthwise_conv2d(&x, &wt, s, p).unwrap();
        assert!(
            max_abs_diff(&got, &want) < 1e-5,
            "kernel: c {c} k {k} s {s} p {p} {h}x{w}"
        );
        let tracked = candle_core::Var::from_tensor(&x).unwrap();
        let got = depthwise_conv2d(tracked.as_tensor(), &wt, s, p).unwrap();
        assert!(
            max_abs_diff(&got, &want) < 1e-5,
            "autograd path: c {c} k {k} s {s} p {p} {h}x{w}"
        );
    }
}

#[test]
fn ops_match_pytorch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity/ops.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let get = |k: &str| {
        t.get(k)
            .unwrap_or_else(|| panic!("fixture has {k}"))
            .clone()
    };
    let args = |k: &str| {
        get(k)
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| v as usize)
            .collect::<Vec<_>>()
    };
    for i in 0..4 {
        let a = args(&format!("conv3d.{i}.args"));
        let y = conv3d(
            &get(&format!("conv3d.{i}.x")),
            &get(&format!("conv3d.{i}.w")),
            Some(&get(&format!("conv3d.{i}.b"))),
            a[0],
            a[1],
        )
        .unwrap();
        assert!(
            max_abs_diff(&y, &get(&format!("conv3d.{i}.y"))) < 1e-4,
            "conv3d {i}"
        );
    }
    for i in 0..3 {
        let a = args(&format!("convt3d.{i}.args"));
        let y = conv_transpose3d(
            &get(&format!("convt3d.{i}.x")),
            &get(&format!("convt3d.{i}.w")),
            Some(&get(&format!("convt3d.{i}.b"))),
            a[0],
            a[1],
            a[2],
        )
        .unwrap();
        assert!(
            max_abs_diff(&y, &get(&format!("convt3d.{i}.y"))) < 1e-4,
            "conv_transpose3d {i}"
        );
    }
    for i in 0..4 {
        let a = args(&format!("dw.{i}.args"));
        let y = depthwise_conv2d(
            &get(&format!("dw.{i}.x")),
            &get(&format!("dw.{i}.w")),
            a[0],
            a[1],
        )
        .unwrap();
        assert!(
            max_abs_diff(&y, &get(&format!("dw.{i}.y"))) < 1e-4,
            "depthwise {i}"
        );
    }
    let y = upsample_trilinear3d(&get("trilinear.x"), 2).unwrap();
    assert!(max_abs_diff(&y, &get("trilinear.y")) < 1e-5, "trilinear");
    let y = resize_bilinear(&get("bilinear.x"), 13, 9).unwrap();
    assert!(max_abs_diff(&y, &get("bilinear.y")) < 1e-5, "bilinear");
}

#[test]
fn conv3d_refuses_mismatched_channels_without_panicking() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4, 4), candle_core::DType::F32, &dev).unwrap();
    let w = Tensor::zeros((2, 4, 3, 3, 3), candle_core::DType::F32, &dev).unwrap();
    let err = conv3d(&x, &w, None, 1, 1).unwrap_err().to_string();
    assert!(err.contains("3 channels"), "{err}");
    let w = Tensor::zeros((2, 3, 5, 3, 3), candle_core::DType::F32, &dev).unwrap();
    let small = Tensor::zeros((1, 3, 2, 4, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(conv3d(&small, &w, None, 1, 0).is_err());
}

#[test]
fn gemm_convolution_and_its_gradients_equal_candles_conv2d() {
    use candle_core::Var;
    use inference::ops::conv2d_gemm;
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let dev = Device::Cpu;
    for _ in 0..12 {
        let c = rng.gen_range(1..5);
        let o = rng.gen_range(1..5);
        let k = [1, 3, 5, 7][rng.gen_range(0..4)];
        let s = rng.gen_range(1..3);
        let p = rng.gen_range(0..=k / 2);
        let h = rng.gen_range(k..14);
        let w = rng.gen_range(k..14);
        let x = Var::from_tensor(
            &Tensor::from_vec(random(&mut rng, 2 * c * h * w), (2, c, h, w), &dev).unwrap(),
        )
        .unwrap();
        let wt = Var::from_tensor(
            &Tensor::from_vec(random(&mut rng, o * c * k * k), (o, c, k, k), &dev).unwrap(),
        )
        .unwrap();
        let probe = Tensor::from_vec(
            random(
                &mut rng,
                2 * o * ((h + 2 * p - k) / s + 1) * ((w + 2 * p - k) / s + 1),
            ),
            (2, o, (h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1),
            &dev,
        )
        .unwrap();
        let want = x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, 1).unwrap();
        let got = conv2d_gemm(x.as_tensor(), wt.as_tensor(), None, s, p).unwrap();
        assert!(
            max_abs_diff(&got, &want) < 1e-4,
            "forward c {c} o {o} k {k} s {s} p {p}"
        );
        // The loss sum(conv · probe) is linear in x and in w separately, so
        // a unit step in one element changes it by exactly that element's
        // gradient (candle's own conv2d backward cannot be the reference:
        // it fails on strided shapes that need an output padding).
        let loss = |x: &Tensor, w: &Tensor| -> f32 {
            (conv2d_gemm(x, w, None, s, p).unwrap() * &probe)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let grads = (got * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let base = loss(x.as_tensor(), wt.as_tensor());
        for (which, v) in [(0, &x), (1, &wt)] {
            let g = grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let flat = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for _ in 0..5 {
                let i = rng.gen_range(0..flat.len());
                let mut bumped = flat.clone();
                bumped[i] += 1.0;
                let t = Tensor::from_vec(bumped, v.as_tensor().shape(), &dev).unwrap();
                let moved = if which == 0 {
                    loss(&t, wt.as_tensor())
                } else {
                    loss(x.as_tensor(), &t)
                };
                assert!(
                    (moved - base - g[i]).abs() < 1e-3 * (1.0 + g[i].abs()),
                    "gradient of {which} at {i}: {} vs {}",
                    moved - base,
                    g[i]
                );
            }
        }
    }
}
