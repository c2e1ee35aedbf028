//! The program an ONNX graph compiles to: steps over numbered slots, each an operation of
//! Burn's tensor API, run in order with every value dropped after its last use.

use std::panic::{AssertUnwindSafe, catch_unwind};

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata};

/// Runs `$body` on the primitive `$p` as a `Tensor<B, $D>` of its own rank (1 to 6), which
/// `$body` must keep; gives the primitive back. (Burn's tensors carry their rank in their
/// type, an ONNX value at run time.) Expanded where `B`, `Tensor`, `TensorPrimitive` and
/// `TensorMetadata` are in scope.
macro_rules! ranked {
    ($p:expr, |$t:ident: $D:ident| $body:expr) => {{
        let p = $p;
        macro_rules! arm {
            ($rank:literal) => {{
                const $D: usize = $rank;
                let $t = Tensor::<B, $D>::from_primitive(TensorPrimitive::Float(p));
                let out: Tensor<B, $D> = $body;
                out.into_primitive().tensor()
            }};
        }
        match p.shape().num_dims() {
            1 => arm!(1),
            2 => arm!(2),
            3 => arm!(3),
            4 => arm!(4),
            5 => arm!(5),
            6 => arm!(6),
            r => panic!("tensors of rank {r} are not supported (1 to 6)"),
        }
    }};
}

mod ops;

use ops::apply;

/// A value of the program: a float tensor on the device, or numbers on the host: integers
/// (a shape, an index, a mask), or reals computed from them. Host values are what ONNX's
/// shape arithmetic computes from the input's shape, the same for every batch of a size,
/// never a per-sample value.
#[derive(Clone, Debug)]
pub(super) enum Value<B: Backend> {
    Float(FloatTensor<B>),
    Ints(Vec<i64>),
    Reals(Vec<f64>),
}

impl<B: Backend> Value<B> {
    fn float(self) -> FloatTensor<B> {
        match self {
            Value::Float(t) => t,
            _ => panic!("a float tensor was expected, host numbers came"),
        }
    }

    fn ints(self) -> Vec<i64> {
        match self {
            Value::Ints(v) => v,
            Value::Reals(v) => v.into_iter().map(|r| r as i64).collect(),
            Value::Float(_) => panic!("integers were expected, a float tensor came"),
        }
    }

    fn reals(self) -> Vec<f64> {
        match self {
            Value::Ints(v) => v.into_iter().map(|i| i as f64).collect(),
            Value::Reals(v) => v,
            Value::Float(_) => panic!("host numbers were expected, a float tensor came"),
        }
    }

    /// A float tensor on `device`: a host value becomes one of shape `[len]`.
    fn on(self, device: &B::Device) -> FloatTensor<B> {
        match self {
            Value::Float(t) => t,
            host => {
                let values: Vec<f32> = host.reals().into_iter().map(|r| r as f32).collect();
                let n = values.len();
                B::float_from_data(burn::tensor::TensorData::new(values, [n]), device)
            }
        }
    }
}

/// Elementwise arithmetic with ONNX's (NumPy's) broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl Binary {
    fn reals(self, a: f64, b: f64) -> f64 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
            Binary::Pow => a.powf(b),
        }
    }

    fn ints(self, a: i64, b: i64) -> i64 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            // ONNX's integer Div truncates, as Rust's.
            Binary::Div => a / b,
            Binary::Pow => a.pow(u32::try_from(b).expect("a non-negative integer exponent")),
        }
    }
}

/// Elementwise functions of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Erf,
    Sqrt,
    Neg,
    Abs,
    Gelu,
    LeakyRelu(f64),
    Clip { min: f64, max: f64 },
}

/// One operation; its operands are the step's inputs, in ONNX's order.
#[derive(Clone, Debug)]
pub(super) enum Op<B: Backend> {
    /// A convolution (ONNX's weight layout is Burn's), with what followed it in the graph
    /// folded in: a batch norm (into the weights), a residual addition (the step's second
    /// input) and a ReLU. It runs through [`conv2d_fused`](crate::models::kernels::conv2d_fused).
    Conv {
        layer: Conv2d<B>,
        residual: bool,
        relu: bool,
    },
    /// `x W + b`, with `W` as `[in, out]`.
    Linear {
        weight: Param<Tensor<B, 2>>,
        bias: Option<Param<Tensor<B, 1>>>,
    },
    Binary(Binary),
    Unary(Unary),
    MatMul,
    Softmax {
        axis: usize,
    },
    /// A batch norm no convolution absorbed: `x * scale + shift`, both shaped to broadcast
    /// over the channel axis 1.
    Affine {
        scale: FloatTensor<B>,
        shift: FloatTensor<B>,
    },
    Flatten {
        axis: usize,
    },
    /// To the shape of the second input (integers) or of `shape`, ONNX's 0 (copy) and -1
    /// (infer) resolved against the input's.
    Reshape {
        shape: Option<Vec<i64>>,
    },
    Transpose {
        perm: Vec<usize>,
    },
    MaxPool(MaxPool2d),
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
        ceil_mode: bool,
    },
    GlobalAvgPool,
    ReduceMean {
        axes: Vec<usize>,
        keep: bool,
    },
    Concat {
        axis: usize,
    },
    /// Dimensions `start..end` of the input's shape, as integers.
    ShapeOf {
        start: usize,
        end: usize,
    },
    /// Host numbers: entries at the second input's indices. A float tensor: the slices at
    /// `index` along `axis` (a scalar index drops the axis).
    Gather {
        axis: usize,
        index: Option<GatherIndex>,
    },
    /// Host numbers only: `output[i] = cond[i] ? a[i] : b[i]`, broadcasting length 1.
    Where,
    /// Host numbers only: 1 where equal, else 0.
    Equal,
    /// To float (`true`) or to integers; float tensors stay float.
    Cast {
        to_float: bool,
    },
    /// A tensor of the shape the input gives, filled with `value`: integers on the host, or
    /// (`float`) a float tensor on the device.
    ConstantOfShape {
        value: f64,
        float: Option<B::Device>,
    },
    /// The input broadcast to the shape the second input gives (NumPy's rules, both ways).
    Expand,
    /// `starts..ends` along `axes`, unit steps, ONNX's negative and out-of-range bounds
    /// clamped as its specification says.
    Slice {
        starts: Vec<i64>,
        ends: Vec<i64>,
        axes: Vec<i64>,
    },
    /// Axes of size 1 removed (all of them when `axes` is empty); host numbers unchanged.
    Squeeze {
        axes: Vec<i64>,
    },
    /// `softmax(q kᵀ * scale (+ mask)) v` over `[batch, heads, tokens, width]` (onnx-ir's
    /// Attention, which it makes of that pattern); `scale` defaults to `1/sqrt(width)`.
    Attention {
        scale: Option<f64>,
        mask: bool,
    },
    /// Normalization over the last axis, then `* scale + bias` (shaped `[1, ..., d]`).
    LayerNorm {
        epsilon: f64,
        scale: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
    },
    /// Float tensor: new axes of size 1 at `axes` (of the output); integers: unchanged (a
    /// scalar becomes a one-entry shape).
    Unsqueeze {
        axes: Vec<usize>,
    },
}

/// A constant index of a float Gather: one (the axis dropped), or several (kept), on the
/// device.
#[derive(Clone, Debug)]
pub(super) enum GatherIndex {
    One(i64),
    Many(Vec<i64>),
}

/// One step: `op` applied to the values in `inputs`, stored in `output`. `take[i]` says that
/// this step is the last to read `inputs[i]`, which it then moves out of its slot (so that a
/// backend may reuse the memory).
#[derive(Clone, Debug)]
pub(super) struct Step<B: Backend> {
    pub op: Op<B>,
    pub inputs: Vec<usize>,
    pub take: Vec<bool>,
    pub output: usize,
    /// The ONNX node, for messages.
    pub node: String,
}

/// A compiled graph: the input's slot, the constants' slots, the steps and the output's slot.
#[derive(Clone, Debug)]
pub(super) struct Program<B: Backend> {
    pub slots: usize,
    pub input: usize,
    pub constants: Vec<(usize, Value<B>)>,
    pub steps: Vec<Step<B>>,
    pub output: usize,
}

impl<B: Backend> Program<B> {
    /// The output for `input`. Panics where Burn's operations do (shapes that do not fit);
    /// [`trial`](Self::trial) runs at load make sure a model's shapes fit.
    pub fn run(&self, input: FloatTensor<B>) -> FloatTensor<B> {
        let never = self.run_with(input, |step, inputs| {
            Ok::<_, std::convert::Infallible>(apply(&step.op, inputs))
        });
        match never {
            Ok(out) => out,
        }
    }

    /// [`run`](Self::run), with a panic of any step caught: the node that failed and what
    /// Burn said. With the output, the most values of any tensor the program computed.
    pub fn trial(
        &self,
        input: FloatTensor<B>,
    ) -> Result<(FloatTensor<B>, usize), (String, String)> {
        let mut largest = input.shape().num_elements();
        let out = self.run_with(input, |step, inputs| {
            let value = catch_unwind(AssertUnwindSafe(|| apply(&step.op, inputs)))
                .map_err(|panic| (step.node.clone(), panic_text(&*panic)))?;
            if let Value::Float(t) = &value {
                largest = largest.max(t.shape().num_elements());
            }
            Ok::<_, (String, String)>(value)
        })?;
        Ok((out, largest))
    }

    fn run_with<E>(
        &self,
        input: FloatTensor<B>,
        mut apply: impl FnMut(&Step<B>, Vec<Value<B>>) -> Result<Value<B>, E>,
    ) -> Result<FloatTensor<B>, E> {
        let mut slots: Vec<Option<Value<B>>> = vec![None; self.slots];
        slots[self.input] = Some(Value::Float(input));
        for (slot, value) in &self.constants {
            slots[*slot] = Some(value.clone());
        }
        for step in &self.steps {
            let inputs: Vec<Value<B>> = step
                .inputs
                .iter()
                .zip(&step.take)
                .map(|(&slot, &take)| {
                    let value = if take {
                        slots[slot].take()
                    } else {
                        slots[slot].clone()
                    };
                    value.expect("a step reads only slots written before it")
                })
                .collect();
            slots[step.output] = Some(apply(step, inputs)?);
        }
        Ok(slots[self.output]
            .take()
            .expect("the output is written")
            .float())
    }
}

/// What a caught panic said.
pub(super) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
