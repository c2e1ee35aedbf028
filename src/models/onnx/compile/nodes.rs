//! The operators: each ONNX node as a step of the program (or folded into one before it).

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::backend::Backend;
use onnx_ir::{ArgType, Node, TensorDataExt};

use super::constants::{dims2, float_on, ints, static_host, tensor2, transpose2, vector_param};
use super::layers::padding;
use super::{Compiler, Draft, Refusal, on_device, operator_name, refuse};
use crate::models::onnx::program::{Binary, GatherIndex, Op, Unary, Value};

impl<B: Backend> Compiler<'_, B> {
    pub(super) fn node(&mut self, node: &Node) -> Result<(), Refusal> {
        let name = node.name();
        let inputs = node.inputs();
        let [out] = node.outputs() else {
            return refuse(
                name,
                format!("{} outputs; one is supported", node.outputs().len()),
            );
        };
        let first = |c: &mut Self| c.operand(name, &inputs[0]);
        let unary = |c: &mut Self, op: Unary| -> Result<(), Refusal> {
            let x = first(c)?;
            c.push(Draft::Ready(Op::Unary(op)), vec![x], out, name);
            Ok(())
        };
        match node {
            Node::Constant(_) | Node::Identity(_) | Node::Dropout(_) => {
                // A constant's readers find its value through their operand; an identity
                // (or inference-time dropout) passes its input on under a new name.
                if !matches!(node, Node::Constant(_)) {
                    let x = first(self)?;
                    self.slots.insert(out.name.clone(), x);
                }
            }
            Node::Add(_) | Node::Sub(_) | Node::Mul(_) | Node::Div(_) | Node::Pow(_) => {
                let op = match node {
                    Node::Add(_) => Binary::Add,
                    Node::Sub(_) => Binary::Sub,
                    Node::Mul(_) => Binary::Mul,
                    Node::Div(_) => Binary::Div,
                    _ => Binary::Pow,
                };
                if op == Binary::Add && self.fuse_residual(node, out)? {
                    return Ok(());
                }
                let (a, b) = (first(self)?, self.operand(name, &inputs[1])?);
                self.push(Draft::Ready(Op::Binary(op)), vec![a, b], out, name);
            }
            Node::Relu(_) => {
                if let Some(index) = self.sole_conv(&inputs[0]).filter(|&i| {
                    let Some(Draft::Conv(c)) = self.steps[i].as_ref().map(|s| &s.draft) else {
                        return false;
                    };
                    !c.relu
                }) {
                    self.conv_mut(index).relu = true;
                    self.retarget(index, out);
                    return Ok(());
                }
                unary(self, Unary::Relu)?;
            }
            Node::Sigmoid(_) => unary(self, Unary::Sigmoid)?,
            Node::Tanh(_) => unary(self, Unary::Tanh)?,
            Node::Exp(_) => unary(self, Unary::Exp)?,
            Node::Erf(_) => unary(self, Unary::Erf)?,
            Node::Sqrt(_) => unary(self, Unary::Sqrt)?,
            Node::Neg(_) => unary(self, Unary::Neg)?,
            Node::Abs(_) => unary(self, Unary::Abs)?,
            Node::Gelu(_) => unary(self, Unary::Gelu)?,
            Node::LeakyRelu(n) => unary(self, Unary::LeakyRelu(n.config.alpha))?,
            Node::Clip(n) => {
                use onnx_ir::node::clip::ClipInput;
                let bound = |b: &Option<ClipInput>, default: f64| match b {
                    None => Ok(default),
                    Some(ClipInput::Static(v)) => Ok(*v),
                    Some(ClipInput::Runtime(_)) => {
                        refuse(name, "Clip bounds computed at run time are not supported")
                    }
                };
                let (min, max) = (
                    bound(&n.config.min, f64::NEG_INFINITY)?,
                    bound(&n.config.max, f64::INFINITY)?,
                );
                unary(self, Unary::Clip { min, max })?;
            }
            Node::Softmax(n) => {
                let x = first(self)?;
                let op = Op::Softmax {
                    axis: n.config.axis,
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Conv2d(n) => self.conv(n)?,
            Node::BatchNormalization(n) => self.batch_norm(n)?,
            Node::Linear(n) => {
                let x = first(self)?;
                let weight = static_host(name, inputs.get(1), "weight")?;
                let [rows, cols] = dims2(name, &weight)?;
                let weight = if n.config.transpose_weight {
                    transpose2(&weight.data, rows, cols)
                } else {
                    weight
                };
                let bias = match inputs.get(2).filter(|a| !a.is_optional()) {
                    Some(arg) => Some(static_host(name, Some(arg), "bias")?.data),
                    None => None,
                };
                let op = Op::Linear {
                    weight: Param::from_tensor(tensor2::<B>(&weight, self.device)),
                    bias: bias.map(|b| vector_param::<B>(b, self.device)),
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Gemm(n) => {
                let c = &n.config;
                if c.trans_a != 0 || c.alpha != 1.0 || c.beta != 1.0 {
                    return refuse(
                        name,
                        "Gemm with transA, alpha or beta other than 0, 1, 1 is not supported",
                    );
                }
                let x = first(self)?;
                // A constant weight is transposed once here; a computed one by a step.
                let w = match (c.trans_b != 0, inputs[1].value()) {
                    (true, Some(_)) => {
                        let w = static_host(name, inputs.get(1), "weight")?;
                        let [rows, cols] = dims2(name, &w)?;
                        let w = transpose2(&w.data, rows, cols);
                        self.constant(Value::Float(float_on::<B>(w.data, &w.dims, self.device)))
                    }
                    (true, None) => {
                        let w = self.operand(name, &inputs[1])?;
                        let op = Op::Transpose { perm: vec![1, 0] };
                        self.push_unnamed(Draft::Ready(op), vec![w], name)
                    }
                    (false, _) => self.operand(name, &inputs[1])?,
                };
                match inputs.get(2).filter(|a| !a.is_optional()) {
                    Some(bias) => {
                        let product = self.push_unnamed(Draft::Ready(Op::MatMul), vec![x, w], name);
                        let b = self.operand(name, bias)?;
                        let op = Op::Binary(Binary::Add);
                        self.push(Draft::Ready(op), vec![product, b], out, name);
                    }
                    None => self.push(Draft::Ready(Op::MatMul), vec![x, w], out, name),
                }
            }
            Node::MatMul(_) => {
                let (a, b) = (first(self)?, self.operand(name, &inputs[1])?);
                self.push(Draft::Ready(Op::MatMul), vec![a, b], out, name);
            }
            Node::Flatten(n) => {
                let x = first(self)?;
                let op = Op::Flatten {
                    axis: n.config.axis,
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Reshape(n) => {
                use onnx_ir::node::reshape::ReshapeInput;
                let x = first(self)?;
                let (op, inputs) = match &n.config.shape {
                    ReshapeInput::Static(shape) => (
                        Op::Reshape {
                            shape: Some(shape.clone()),
                        },
                        vec![x],
                    ),
                    ReshapeInput::Runtime(r) => {
                        let s = self.operand(name, &inputs[r.input_index])?;
                        (Op::Reshape { shape: None }, vec![x, s])
                    }
                };
                self.push(Draft::Ready(op), inputs, out, name);
            }
            Node::Transpose(n) => {
                let x = first(self)?;
                let rank = n.config.perm.len() as i64;
                let perm = n
                    .config
                    .perm
                    .iter()
                    .map(|&p| usize::try_from(if p < 0 { p + rank } else { p }))
                    .collect::<Result<Vec<_>, _>>()
                    .or_else(|_| refuse(name, "a Transpose axis is out of range"))?;
                self.push(Draft::Ready(Op::Transpose { perm }), vec![x], out, name);
            }
            Node::MaxPool2d(n) => {
                let c = &n.config;
                let padding = padding(name, &c.padding, c.auto_pad.clone())?;
                let x = first(self)?;
                let pool = MaxPool2d {
                    stride: c.strides,
                    kernel_size: c.kernel_size,
                    padding,
                    dilation: c.dilation,
                    ceil_mode: c.ceil_mode,
                };
                self.push(Draft::Ready(Op::MaxPool(pool)), vec![x], out, name);
            }
            Node::AveragePool2d(n) => {
                let c = &n.config;
                let padding = match padding(name, &c.padding, c.auto_pad.clone())? {
                    PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => [t, l],
                    PaddingConfig2d::Valid => [0, 0],
                    _ => return refuse(name, "AveragePool with asymmetric padding"),
                };
                if c.dilation != [1, 1] {
                    return refuse(name, "AveragePool with dilation");
                }
                let x = first(self)?;
                let op = Op::AvgPool {
                    kernel: c.kernel_size,
                    stride: c.strides,
                    padding,
                    count_include_pad: c.count_include_pad,
                    ceil_mode: c.ceil_mode,
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::GlobalAveragePool(_) => {
                let x = first(self)?;
                self.push(Draft::Ready(Op::GlobalAvgPool), vec![x], out, name);
            }
            Node::ReduceMean(n) => {
                let x = first(self)?;
                let op = Op::ReduceMean {
                    axes: n.config.dims.clone(),
                    keep: n.config.keepdims,
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Concat(n) => {
                let operands = inputs
                    .iter()
                    .map(|a| self.operand(name, a))
                    .collect::<Result<Vec<_>, _>>()?;
                let op = Op::Concat {
                    axis: n.config.axis,
                };
                self.push(Draft::Ready(op), operands, out, name);
            }
            Node::Shape(n) => {
                let x = first(self)?;
                let op = Op::ShapeOf {
                    start: n.config.start,
                    end: n.config.end,
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Gather(n) => {
                let x = first(self)?;
                let index = inputs[1].value();
                let on_device = matches!(&inputs[0].ty, ArgType::Tensor(t) if t.dtype.is_float())
                    && !inputs[0].is_static();
                if on_device {
                    let Some(index) = index else {
                        return refuse(name, "Gather of a tensor at indices computed at run time");
                    };
                    let values = ints(name, &index)?;
                    let index = if index.shape.is_empty()
                        || matches!(
                            inputs[1].ty,
                            ArgType::ScalarTensor(_) | ArgType::ScalarNative(_)
                        ) {
                        GatherIndex::One(values[0])
                    } else if index.shape.len() == 1 {
                        GatherIndex::Many(values)
                    } else {
                        return refuse(name, "Gather with a multi-dimensional index");
                    };
                    let op = Op::Gather {
                        axis: n.config.axis,
                        index: Some(index),
                    };
                    self.push(Draft::Ready(op), vec![x], out, name);
                } else {
                    let i = self.operand(name, &inputs[1])?;
                    let op = Op::Gather {
                        axis: n.config.axis,
                        index: None,
                    };
                    self.push(Draft::Ready(op), vec![x, i], out, name);
                }
            }
            Node::Where(_) | Node::Equal(_) => {
                if inputs.iter().any(on_device) {
                    return refuse(
                        name,
                        format!(
                            "{} of tensors (the shape arithmetic's, on integers, is supported)",
                            operator_name(node)
                        ),
                    );
                }
                let operands = inputs
                    .iter()
                    .map(|a| self.operand(name, a))
                    .collect::<Result<Vec<_>, _>>()?;
                let op = if matches!(node, Node::Where(_)) {
                    Op::Where
                } else {
                    Op::Equal
                };
                self.push(Draft::Ready(op), operands, out, name);
            }
            Node::Cast(n) => {
                let to_float = n.config.to.is_float();
                if !to_float && on_device(&inputs[0]) {
                    return refuse(name, format!("Cast of a float tensor to {:?}", n.config.to));
                }
                let x = first(self)?;
                self.push(Draft::Ready(Op::Cast { to_float }), vec![x], out, name);
            }
            Node::ConstantOfShape(n) => {
                use onnx_ir::node::constant_of_shape::ConstantOfShapeShape;
                let value = match &n.config.value {
                    Some(v) => v
                        .scalar_f64()
                        .or_else(|e| refuse(name, format!("its value is unreadable: {e:?}")))?,
                    None => 0.0,
                };
                let float = on_device(out).then(|| self.device.clone());
                let shape = match &n.config.shape {
                    ConstantOfShapeShape::Static(dims) => self.constant(Value::Ints(dims.clone())),
                    ConstantOfShapeShape::Runtime(r) => {
                        self.operand(name, &inputs[r.input_index])?
                    }
                };
                let op = Op::ConstantOfShape { value, float };
                self.push(Draft::Ready(op), vec![shape], out, name);
            }
            Node::Expand(n) => {
                use onnx_ir::node::expand::ExpandConfig;
                if !on_device(&inputs[0]) {
                    return refuse(name, "Expand of host numbers");
                }
                let x = first(self)?;
                let shape = match &n.config {
                    ExpandConfig::Static(dims) => self.constant(Value::Ints(dims.clone())),
                    ExpandConfig::Runtime(r) => self.operand(name, &inputs[r.input_index])?,
                };
                self.push(Draft::Ready(Op::Expand), vec![x, shape], out, name);
            }
            Node::Slice(n) => {
                use onnx_ir::node::slice::SliceInput;
                let fixed = |input: &Option<SliceInput>, what: &str| match input {
                    None => Ok(None),
                    Some(SliceInput::Static(v)) => Ok(Some(v.clone())),
                    Some(SliceInput::Runtime(_)) => {
                        refuse(name, format!("Slice {what} computed at run time"))
                    }
                };
                let starts = fixed(&Some(n.config.starts.clone()), "starts")?.unwrap_or_default();
                let ends = fixed(&Some(n.config.ends.clone()), "ends")?.unwrap_or_default();
                let axes = fixed(&n.config.axes, "axes")?
                    .unwrap_or_else(|| (0..starts.len() as i64).collect());
                if let Some(steps) = fixed(&n.config.steps, "steps")?
                    && steps.iter().any(|&s| s != 1)
                {
                    return refuse(name, "Slice with steps other than 1");
                }
                if starts.len() != ends.len() || starts.len() != axes.len() {
                    return refuse(name, "Slice starts, ends and axes of different lengths");
                }
                let x = first(self)?;
                let op = Op::Slice { starts, ends, axes };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Squeeze(n) => {
                use onnx_ir::node::squeeze::SqueezeInput;
                let axes = match &n.config.axes {
                    None => Vec::new(),
                    Some(SqueezeInput::Static(axes)) => axes.clone(),
                    Some(SqueezeInput::Runtime(_)) => {
                        return refuse(name, "Squeeze axes computed at run time");
                    }
                };
                let x = first(self)?;
                self.push(Draft::Ready(Op::Squeeze { axes }), vec![x], out, name);
            }
            Node::Attention(n) => {
                use onnx_ir::node::attention::AttentionQkMatmulOutputMode;
                let c = &n.config;
                let plain = !c.is_causal
                    && c.softcap == 0.0
                    && c.qk_matmul_output_mode == AttentionQkMatmulOutputMode::Matmul
                    && n.outputs.len() == 1
                    && inputs.iter().take(3).all(|a| a.ty.rank() == 4);
                if !plain {
                    return refuse(
                        name,
                        "Attention is supported on 4-D q, k, v, not causal, without softcap",
                    );
                }
                let mask = inputs.get(3).filter(|a| !a.is_optional());
                if mask.is_some_and(|m| !on_device(m) && m.value().is_none()) || inputs.len() > 4 {
                    return refuse(name, "Attention with a boolean mask or a key-value cache");
                }
                let mut operands = inputs[..3]
                    .iter()
                    .map(|a| self.operand(name, a))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(m) = mask {
                    operands.push(self.operand(name, m)?);
                }
                let op = Op::Attention {
                    scale: c.scale,
                    mask: mask.is_some(),
                };
                self.push(Draft::Ready(op), operands, out, name);
            }
            Node::LayerNormalization(n) => {
                let x = first(self)?;
                let scale = static_host(name, inputs.get(1), "scale")?.data;
                let bias = match inputs.get(2).filter(|a| !a.is_optional()) {
                    Some(arg) => Some(static_host(name, Some(arg), "bias")?.data),
                    None => None,
                };
                let on = |v: Vec<f32>| {
                    let n = v.len();
                    float_on::<B>(v, &[n], self.device)
                };
                let op = Op::LayerNorm {
                    epsilon: n.config.epsilon,
                    scale: on(scale),
                    bias: bias.map(on),
                };
                self.push(Draft::Ready(op), vec![x], out, name);
            }
            Node::Unsqueeze(n) => {
                use onnx_ir::node::unsqueeze::UnsqueezeConfig;
                let x = first(self)?;
                let axes = match &n.config {
                    UnsqueezeConfig::Static(axes) => axes.clone(),
                    UnsqueezeConfig::Runtime(_) => {
                        return refuse(name, "Unsqueeze axes computed at run time");
                    }
                };
                let rank = match &out.ty {
                    ArgType::Tensor(t) => t.rank as i64,
                    _ => 1,
                };
                let axes = axes
                    .iter()
                    .map(|&a| usize::try_from(if a < 0 { a + rank } else { a }))
                    .collect::<Result<Vec<_>, _>>()
                    .or_else(|_| refuse(name, "an Unsqueeze axis is out of range"))?;
                self.push(Draft::Ready(Op::Unsqueeze { axes }), vec![x], out, name);
            }
            other => {
                return refuse(
                    name,
                    format!(
                        "operator {} is not supported (models::onnx lists those that are)",
                        operator_name(other)
                    ),
                );
            }
        }
        Ok(())
    }
}
