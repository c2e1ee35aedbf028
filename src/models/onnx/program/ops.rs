//! What each operation computes, on the values of its step.

use burn::module::Param;
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};

use super::{Binary, GatherIndex, Op, Unary, Value};
use crate::models::kernels;

pub(super) fn apply<B: Backend>(op: &Op<B>, inputs: Vec<Value<B>>) -> Value<B> {
    if let Op::Concat { axis } = op {
        return concat(inputs, *axis);
    }
    let mut inputs = inputs.into_iter();
    let mut next = || inputs.next().expect("the step has its operands");
    let float = match op {
        Op::Conv {
            layer,
            residual,
            relu,
        } => {
            let x = rank4::<B>(next().float());
            let r = residual.then(|| rank4::<B>(next().float()));
            kernels::conv2d_fused(layer, x, r, *relu)
                .into_primitive()
                .tensor()
        }
        Op::Linear { weight, bias } => ranked!(next().float(), |x: D| {
            burn::tensor::module::linear(x, weight.val(), bias.as_ref().map(Param::val))
        }),
        Op::Binary(op) => {
            let (a, b) = (next(), next());
            let device = match (&a, &b) {
                (Value::Float(t), _) | (_, Value::Float(t)) => B::float_device(t),
                (Value::Ints(x), Value::Ints(y)) => {
                    return Value::Ints(zip_broadcast(x, y, |x, y| op.ints(x, y)));
                }
                _ => {
                    let (x, y) = (a.reals(), b.reals());
                    return Value::Reals(zip_broadcast(&x, &y, |x, y| op.reals(x, y)));
                }
            };
            binary::<B>(*op, a.on(&device), b.on(&device))
        }
        Op::Unary(op) => ranked!(next().float(), |x: D| match *op {
            Unary::Relu => activation::relu(x),
            Unary::Sigmoid => activation::sigmoid(x),
            Unary::Tanh => x.tanh(),
            Unary::Exp => x.exp(),
            Unary::Erf => x.erf(),
            Unary::Sqrt => x.sqrt(),
            Unary::Neg => x.neg(),
            Unary::Abs => x.abs(),
            Unary::Gelu => activation::gelu(x),
            Unary::LeakyRelu(slope) => activation::leaky_relu(x, slope),
            Unary::Clip { min, max } => x.clamp(min, max),
        }),
        Op::MatMul => {
            let (a, b) = (next().float(), next().float());
            // ONNX's MatMul promotes a vector operand to a matrix and drops that axis after.
            let (ra, rb) = (a.shape().num_dims(), b.shape().num_dims());
            let a = if ra == 1 { unsqueeze::<B>(a, 0) } else { a };
            let b = if rb == 1 { unsqueeze::<B>(b, 1) } else { b };
            let (a, b) = broadcast_ranks::<B>(a, b);
            let out = ranked!(a, |a: D| a
                .matmul(Tensor::<B, D>::from_primitive(TensorPrimitive::Float(b))));
            let mut dims = out.shape().to_vec();
            if rb == 1 {
                dims.pop();
            }
            if ra == 1 {
                dims.remove(dims.len() - 1 - usize::from(rb != 1));
            }
            reshape::<B>(out, dims)
        }
        Op::Softmax { axis } => ranked!(next().float(), |x: D| activation::softmax(x, *axis)),
        Op::Affine { scale, shift } => {
            let x = binary::<B>(Binary::Mul, next().float(), scale.clone());
            binary::<B>(Binary::Add, x, shift.clone())
        }
        Op::Flatten { axis } => {
            let x = next().float();
            let dims = x.shape().to_vec();
            let (outer, inner) = dims.split_at(*axis);
            reshape::<B>(
                x,
                vec![outer.iter().product(), inner.iter().product::<usize>()],
            )
        }
        Op::Transpose { perm } => {
            let x = next().float();
            ranked!(x, |x: D| x.permute(
                <[usize; D]>::try_from(perm.as_slice()).expect("one axis per dimension")
            ))
        }
        Op::MaxPool(pool) => kernels::max_pool2d(pool, rank4::<B>(next().float()))
            .into_primitive()
            .tensor(),
        Op::AvgPool {
            kernel,
            stride,
            padding,
            count_include_pad,
            ceil_mode,
        } => burn::tensor::module::avg_pool2d(
            rank4::<B>(next().float()),
            *kernel,
            *stride,
            *padding,
            *count_include_pad,
            *ceil_mode,
        )
        .into_primitive()
        .tensor(),
        Op::GlobalAvgPool => {
            let x = next().float();
            let rank = x.shape().num_dims();
            ranked!(x, |x: D| (2..rank).fold(x, |x, axis| x.mean_dim(axis)))
        }
        Op::ReduceMean { axes, keep } => {
            let x = next().float();
            let mut dims = x.shape().to_vec();
            let mean = ranked!(x, |x: D| axes.iter().fold(x, |x, &a| x.mean_dim(a)));
            if *keep {
                mean
            } else {
                let mut axes = axes.clone();
                axes.sort_unstable();
                for &a in axes.iter().rev() {
                    dims.remove(a);
                }
                reshape::<B>(mean, dims)
            }
        }
        Op::Concat { .. } => unreachable!("handled above"),
        Op::ShapeOf { start, end } => {
            let dims: Vec<i64> = match next() {
                Value::Float(x) => x.shape().iter().map(|&d| d as i64).collect(),
                Value::Ints(v) => vec![v.len() as i64],
                Value::Reals(v) => vec![v.len() as i64],
            };
            let end = (*end).min(dims.len());
            return Value::Ints(dims[(*start).min(end)..end].to_vec());
        }
        Op::Gather { axis, index } => match (next(), index) {
            (Value::Float(x), Some(index)) => gather::<B>(x, *axis, index),
            (values, _) => {
                let indices = next().ints();
                let pick = |n: usize, i: i64| (if i < 0 { i + n as i64 } else { i }) as usize;
                return match values {
                    Value::Ints(v) => {
                        Value::Ints(indices.iter().map(|&i| v[pick(v.len(), i)]).collect())
                    }
                    values => {
                        let v = values.reals();
                        Value::Reals(indices.iter().map(|&i| v[pick(v.len(), i)]).collect())
                    }
                };
            }
        },
        Op::Where => {
            let (cond, a, b) = (next().ints(), next(), next());
            let pick = |i: usize, v: &[i64]| v[if v.len() == 1 { 0 } else { i }];
            let (a, b) = (a.ints(), b.ints());
            let n = cond.len().max(a.len()).max(b.len());
            return Value::Ints(
                (0..n)
                    .map(|i| {
                        if pick(i, &cond) != 0 {
                            pick(i, &a)
                        } else {
                            pick(i, &b)
                        }
                    })
                    .collect(),
            );
        }
        Op::Equal => {
            let (a, b) = (next().reals(), next().reals());
            return Value::Ints(zip_broadcast(&a, &b, |a, b| i64::from(a == b)));
        }
        Op::Cast { to_float } => {
            return match (next(), to_float) {
                (Value::Float(t), _) => Value::Float(t),
                (host, true) => Value::Reals(host.reals()),
                (host, false) => Value::Ints(host.ints()),
            };
        }
        Op::ConstantOfShape { value, float } => {
            let dims: Vec<usize> = next()
                .ints()
                .into_iter()
                .map(|d| usize::try_from(d).expect("a non-negative dimension"))
                .collect();
            let n = dims.iter().product();
            return match float {
                None => Value::Ints(vec![*value as i64; n]),
                Some(device) => Value::Float(B::float_from_data(
                    burn::tensor::TensorData::new(vec![*value as f32; n], dims),
                    device,
                )),
            };
        }
        Op::Expand => {
            let x = next().float();
            let target: Vec<usize> = next()
                .ints()
                .into_iter()
                .map(|d| usize::try_from(d).expect("a non-negative dimension"))
                .collect();
            let dims = x.shape().to_vec();
            let rank = dims.len().max(target.len());
            let lift = |d: &[usize]| {
                let mut v = vec![1; rank - d.len()];
                v.extend_from_slice(d);
                v
            };
            let (dims, target) = (lift(&dims), lift(&target));
            let out: Vec<usize> = dims
                .iter()
                .zip(&target)
                .map(|(&a, &b)| if a == 1 { b } else { a })
                .collect();
            let x = reshape::<B>(x, dims);
            ranked!(x, |x: D| x.expand(
                <[usize; D]>::try_from(out.as_slice()).expect("one size per axis")
            ))
        }
        Op::Slice { starts, ends, axes } => match next() {
            Value::Float(x) => {
                let dims = x.shape().to_vec();
                let mut ranges: Vec<std::ops::Range<usize>> = dims.iter().map(|&d| 0..d).collect();
                for ((&s, &e), &a) in starts.iter().zip(ends).zip(axes) {
                    let a = axis_of(a, dims.len());
                    ranges[a] = clamp_range(s, e, dims[a]);
                }
                ranked!(x, |x: D| x.slice(
                    <[std::ops::Range<usize>; D]>::try_from(ranges).expect("one range per axis")
                ))
            }
            Value::Ints(v) => {
                let r = clamp_range(starts[0], ends[0], v.len());
                return Value::Ints(v[r].to_vec());
            }
            Value::Reals(v) => {
                let r = clamp_range(starts[0], ends[0], v.len());
                return Value::Reals(v[r].to_vec());
            }
        },
        Op::Squeeze { axes } => match next() {
            Value::Float(x) => {
                let dims = x.shape().to_vec();
                let rank = dims.len();
                let drop: Vec<usize> = axes.iter().map(|&a| axis_of(a, rank)).collect();
                let kept: Vec<usize> = dims
                    .iter()
                    .enumerate()
                    .filter(|&(i, &d)| !(d == 1 && (drop.is_empty() || drop.contains(&i))))
                    .map(|(_, &d)| d)
                    .collect();
                reshape::<B>(x, kept)
            }
            host => return host,
        },
        Op::Attention { scale, mask } => {
            let (q, k, v) = (
                rank4::<B>(next().float()),
                rank4::<B>(next().float()),
                rank4::<B>(next().float()),
            );
            let width = q.dims()[3];
            let scale = scale.unwrap_or(1.0 / (width as f64).sqrt());
            let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
            if *mask {
                let m = next().float();
                let (s, m) = broadcast_ranks::<B>(scores.into_primitive().tensor(), m);
                scores = rank4::<B>(s) + rank4::<B>(m);
            }
            activation::softmax(scores, 3)
                .matmul(v)
                .into_primitive()
                .tensor()
        }
        Op::LayerNorm {
            epsilon,
            scale,
            bias,
        } => {
            let x = next().float();
            let rank = x.shape().num_dims();
            let lift = |p: &FloatTensor<B>| {
                let mut dims = vec![1; rank - 1];
                dims.push(p.shape().num_elements());
                reshape::<B>(p.clone(), dims)
            };
            let (scale, bias) = (lift(scale), bias.as_ref().map(lift));
            ranked!(x, |x: D| {
                let mean = x.clone().mean_dim(D - 1);
                let centered = x - mean;
                let var = centered.clone().square().mean_dim(D - 1);
                let scale = Tensor::<B, D>::from_primitive(TensorPrimitive::Float(scale));
                let y = centered / (var + *epsilon).sqrt() * scale;
                match bias {
                    Some(b) => y + Tensor::<B, D>::from_primitive(TensorPrimitive::Float(b)),
                    None => y,
                }
            })
        }
        Op::Unsqueeze { axes } => match next() {
            Value::Float(x) => {
                let mut dims = x.shape().to_vec();
                let mut axes = axes.clone();
                axes.sort_unstable();
                for a in axes {
                    dims.insert(a, 1);
                }
                reshape::<B>(x, dims)
            }
            host => return host,
        },
        Op::Reshape { shape } => match next() {
            Value::Float(x) => {
                let target = match shape {
                    Some(shape) => shape.clone(),
                    None => next().ints(),
                };
                let dims = resolve_reshape(&x.shape(), &target);
                reshape::<B>(x, dims)
            }
            // A shape reshaped (to [-1]) is the same numbers.
            host => return host,
        },
    };
    Value::Float(float)
}

/// `f` over `a` and `b` entry by entry, an operand of length 1 repeated.
fn zip_broadcast<T: Copy, U>(a: &[T], b: &[T], f: impl Fn(T, T) -> U) -> Vec<U> {
    let n = a.len().max(b.len());
    let at = |v: &[T], i: usize| v[if v.len() == 1 { 0 } else { i }];
    (0..n).map(|i| f(at(a, i), at(b, i))).collect()
}

/// A possibly negative ONNX axis of a tensor of rank `rank`.
fn axis_of(axis: i64, rank: usize) -> usize {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .expect("an axis of the tensor")
}

/// ONNX Slice's bounds on an axis of length `n`: negative ones count from the end, then
/// both are clamped to `0..=n`.
fn clamp_range(start: i64, end: i64, n: usize) -> std::ops::Range<usize> {
    let n = n as i64;
    let fix = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
    let (s, e) = (fix(start), fix(end));
    s..e.max(s)
}

fn gather<B: Backend>(x: FloatTensor<B>, axis: usize, index: &GatherIndex) -> FloatTensor<B> {
    let dims = x.shape().to_vec();
    let n = dims[axis];
    let fix = |i: i64| (if i < 0 { i + n as i64 } else { i }) as usize;
    match index {
        GatherIndex::One(i) => {
            let i = fix(*i);
            let picked = ranked!(x, |x: D| x.narrow(axis, i, 1));
            let mut kept = dims;
            kept.remove(axis);
            reshape::<B>(picked, kept)
        }
        GatherIndex::Many(indices) => {
            let parts: Vec<FloatTensor<B>> = indices
                .iter()
                .map(|&i| {
                    let i = fix(i);
                    ranked!(x.clone(), |x: D| x.narrow(axis, i, 1))
                })
                .collect();
            concat::<B>(parts.into_iter().map(Value::Float).collect(), axis).float()
        }
    }
}

fn concat<B: Backend>(values: Vec<Value<B>>, axis: usize) -> Value<B> {
    if values.iter().all(|v| matches!(v, Value::Ints(_))) {
        return Value::Ints(values.into_iter().flat_map(Value::ints).collect());
    }
    if !values.iter().any(|v| matches!(v, Value::Float(_))) {
        return Value::Reals(values.into_iter().flat_map(Value::reals).collect());
    }
    let mut floats = values.into_iter().map(Value::float);
    let first = floats.next().expect("Concat has an operand");
    let rest: Vec<FloatTensor<B>> = floats.collect();
    Value::Float(ranked!(first, |first: D| {
        let rest = rest
            .into_iter()
            .map(|t| Tensor::<B, D>::from_primitive(TensorPrimitive::Float(t)));
        Tensor::cat(std::iter::once(first).chain(rest).collect(), axis)
    }))
}

/// `a op b` with ONNX's broadcasting. Where one operand is shared by the whole batch (its
/// first axis 1, such as a normalization's `[1, c, 1, 1]` statistics), both become rows of one
/// image each, the shared one expanded on the device to a row: the same arithmetic, element
/// for element, but the row broadcast that every CPU backend vectorizes (Flex takes a
/// per-element strided path for the other; see `models::Normalize`).
fn binary<B: Backend>(op: Binary, a: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    let (a, b) = broadcast_ranks::<B>(a, b);
    let (da, db) = (a.shape().to_vec(), b.shape().to_vec());
    let out: Vec<usize> = da.iter().zip(&db).map(|(&x, &y)| x.max(y)).collect();
    let per_batch = |big: &[usize], small: &[usize]| {
        big.len() >= 2 && big[0] > 1 && small[0] == 1 && big[1..] == out[1..] && big != small
    };
    let (a, b, rows) = if per_batch(&da, &db) {
        let (a, b) = as_rows::<B>(a, b, &out);
        (a, b, true)
    } else if per_batch(&db, &da) {
        let (b, a) = as_rows::<B>(b, a, &out);
        (a, b, true)
    } else {
        (a, b, false)
    };
    let result = ranked!(a, |a: D| {
        let b = Tensor::<B, D>::from_primitive(TensorPrimitive::Float(b));
        match op {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Pow => a.powf(b),
        }
    });
    if rows {
        reshape::<B>(result, out)
    } else {
        result
    }
}

/// `big` as `[batch, rest]` and `shared` expanded to one row `[1, rest]` of it.
fn as_rows<B: Backend>(
    big: FloatTensor<B>,
    shared: FloatTensor<B>,
    out: &[usize],
) -> (FloatTensor<B>, FloatTensor<B>) {
    let rest: usize = out[1..].iter().product();
    let mut one = out.to_vec();
    one[0] = 1;
    let shared = ranked!(shared, |s: D| s
        .expand(<[usize; D]>::try_from(one.as_slice()).expect("one size per axis")));
    (
        reshape::<B>(big, vec![out[0], rest]),
        reshape::<B>(shared, vec![1, rest]),
    )
}

fn rank4<B: Backend>(p: FloatTensor<B>) -> Tensor<B, 4> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

pub(super) fn reshape<B: Backend>(p: FloatTensor<B>, dims: Vec<usize>) -> FloatTensor<B> {
    B::float_reshape(p, Shape::from(dims))
}

fn unsqueeze<B: Backend>(p: FloatTensor<B>, axis: usize) -> FloatTensor<B> {
    let mut dims = p.shape().to_vec();
    dims.insert(axis, 1);
    reshape::<B>(p, dims)
}

/// The two operands at one rank: the lower-ranked one with leading axes of size 1, as
/// ONNX's broadcasting aligns trailing axes.
fn broadcast_ranks<B: Backend>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (ra, rb) = (a.shape().num_dims(), b.shape().num_dims());
    let lift = |p: FloatTensor<B>, from: usize, to: usize| {
        if from == to {
            return p;
        }
        let mut dims = vec![1; to - from];
        dims.extend(p.shape().iter());
        reshape::<B>(p, dims)
    };
    let rank = ra.max(rb);
    (lift(a, ra, rank), lift(b, rb, rank))
}

/// ONNX Reshape's target: 0 copies the input's dimension there, -1 takes what is left.
pub(super) fn resolve_reshape(input: &[usize], target: &[i64]) -> Vec<usize> {
    let total: usize = input.iter().product();
    let mut dims: Vec<usize> = target
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            0 => input[i],
            -1 => 1,
            d => usize::try_from(d).expect("a reshape's dimensions are -1, 0 or positive"),
        })
        .collect();
    if let Some(free) = target.iter().position(|&d| d == -1) {
        let known: usize = dims.iter().product();
        assert!(
            known > 0 && total.is_multiple_of(known),
            "cannot reshape {input:?} to {target:?}"
        );
        dims[free] = total / known;
    }
    dims
}
