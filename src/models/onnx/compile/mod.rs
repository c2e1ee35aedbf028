//! From onnx-ir's typed graph to a [`Program`]: operands resolved to slots, constants put on
//! the device, batch norms folded into the convolutions before them, and a convolution's
//! residual addition and ReLU fused into it. The operators are in `nodes`, the convolutions
//! and batch norms in `layers`, the file's constants in `constants`.

use std::collections::HashMap;

use burn::nn::PaddingConfig2d;
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use onnx_ir::{ArgType, Argument, Node, OnnxGraph};

use super::program::{Op, Program, Step, Value};

mod constants;
mod layers;
mod nodes;

use constants::{HostTensor, float_on, host, ints};
use layers::conv_op;

/// Why a graph cannot be compiled: the node (if one is to blame) and what is wrong.
#[derive(Debug)]
pub(super) struct Refusal {
    pub node: Option<String>,
    pub reason: String,
}

fn refuse<T>(node: &str, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        node: Some(node.to_string()),
        reason: reason.into(),
    })
}

/// A convolution before it goes to the device, so that a batch norm after it can still be
/// folded into its weights.
#[derive(Clone, Debug)]
struct ConvDraft {
    weight: HostTensor,
    bias: Option<Vec<f32>>,
    stride: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    padding: PaddingConfig2d,
    residual: bool,
    relu: bool,
}

enum Draft<B: Backend> {
    Conv(ConvDraft),
    Ready(Op<B>),
}

struct DraftStep<B: Backend> {
    draft: Draft<B>,
    inputs: Vec<usize>,
    output: usize,
    node: String,
}

/// The compiled graph and the shape of one input (without the batch axis).
pub(super) struct Compiled<B: Backend> {
    pub program: Program<B>,
    pub input_shape: Vec<usize>,
}

struct Compiler<'g, B: Backend> {
    device: &'g B::Device,
    slots: HashMap<String, usize>,
    count: usize,
    constants: Vec<(usize, Value<B>)>,
    /// How many operands (and graph outputs) read each value, by name.
    readers: HashMap<String, usize>,
    steps: Vec<Option<DraftStep<B>>>,
    /// Which step writes each slot.
    writer: HashMap<usize, usize>,
}

pub(super) fn compile<B: Backend>(
    graph: &OnnxGraph,
    device: &B::Device,
) -> Result<Compiled<B>, Refusal> {
    let whole = |reason: String| Refusal { node: None, reason };
    let [input] = graph.inputs.as_slice() else {
        return Err(whole(format!(
            "the graph has {} inputs; one is supported, [batch, ...]",
            graph.inputs.len()
        )));
    };
    let [output] = graph.outputs.as_slice() else {
        return Err(whole(format!(
            "the graph has {} outputs; one is supported, the logits",
            graph.outputs.len()
        )));
    };
    let input_shape = input_shape(input).map_err(whole)?;
    let mut compiler = Compiler::<B> {
        device,
        slots: HashMap::from([(input.name.clone(), 0)]),
        count: 1,
        constants: Vec::new(),
        readers: HashMap::new(),
        steps: Vec::new(),
        writer: HashMap::new(),
    };
    for name in graph
        .nodes
        .iter()
        .flat_map(|n| n.inputs().iter().filter(|a| a.is_dynamic()))
        .map(|a| &a.name)
        .chain(std::iter::once(&output.name))
    {
        *compiler.readers.entry(name.clone()).or_default() += 1;
    }
    for node in &graph.nodes {
        compiler.node(node)?;
    }
    let output = *compiler.slots.get(&output.name).ok_or_else(|| {
        whole(format!(
            "the output {} is not computed from the input",
            output.name
        ))
    })?;
    Ok(Compiled {
        program: compiler.finish(output),
        input_shape,
    })
}

/// `[batch, dims...]` with a symbolic batch and every other dimension fixed.
fn input_shape(input: &Argument) -> Result<Vec<usize>, String> {
    let ArgType::Tensor(tensor) = &input.ty else {
        return Err(format!("the input {} is not a tensor", input.name));
    };
    if tensor.dtype != DType::F32 {
        return Err(format!(
            "the input {} is {:?}; float32 inputs are supported",
            input.name, tensor.dtype
        ));
    }
    let Some(dims) = tensor.static_shape.as_ref().filter(|d| d.len() >= 2) else {
        return Err(format!(
            "the input {} has no shape [batch, ...] recorded (rank {})",
            input.name, tensor.rank
        ));
    };
    if let Some(batch) = dims[0] {
        return Err(format!(
            "the input {} has a fixed batch of {batch}: export it with a symbolic batch \
             (torch.onnx.export(..., dynamic_axes={{'{}': {{0: 'batch'}}}}) or, with \
             dynamo=True, dynamic_shapes), as a certificate runs many batch sizes",
            input.name, input.name
        ));
    }
    dims[1..]
        .iter()
        .map(|d| d.filter(|&d| d > 0))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            format!(
                "the input {} has symbolic dimensions besides the batch: {dims:?}",
                input.name
            )
        })
}

impl<B: Backend> Compiler<'_, B> {
    fn slot(&mut self, name: &str) -> usize {
        if let Some(&s) = self.slots.get(name) {
            return s;
        }
        let s = self.count;
        self.count += 1;
        self.slots.insert(name.to_string(), s);
        s
    }

    fn constant(&mut self, value: Value<B>) -> usize {
        let s = self.count;
        self.count += 1;
        self.constants.push((s, value));
        s
    }

    /// The slot of an operand: a constant's (put on the device) or an earlier node's.
    fn operand(&mut self, node: &str, arg: &Argument) -> Result<usize, Refusal> {
        if let Some(data) = arg.value() {
            let value = match data.dtype {
                DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 => {
                    Value::Ints(ints(node, &data)?)
                }
                _ => {
                    let host = host(node, &arg.name, data)?;
                    let dims = if host.dims.is_empty() {
                        vec![1]
                    } else {
                        host.dims
                    };
                    Value::Float(float_on::<B>(host.data, &dims, self.device))
                }
            };
            return Ok(self.constant(value));
        }
        match self.slots.get(&arg.name) {
            Some(&s) => Ok(s),
            None => refuse(
                node,
                format!("reads {}, which no earlier node writes", arg.name),
            ),
        }
    }

    fn push(&mut self, draft: Draft<B>, inputs: Vec<usize>, output: &Argument, node: &str) {
        let output = self.slot(&output.name);
        self.push_into(draft, inputs, output, node);
    }

    /// A step whose output is a slot of no name (a part of one node's computation).
    fn push_unnamed(&mut self, draft: Draft<B>, inputs: Vec<usize>, node: &str) -> usize {
        let output = self.count;
        self.count += 1;
        self.push_into(draft, inputs, output, node);
        output
    }

    fn push_into(&mut self, draft: Draft<B>, inputs: Vec<usize>, output: usize, node: &str) {
        self.writer.insert(output, self.steps.len());
        self.steps.push(Some(DraftStep {
            draft,
            inputs,
            output,
            node: node.to_string(),
        }));
    }

    /// The convolution whose output `arg` is, if only one operand reads that output (so that
    /// what follows may be folded into it): its step index. The readers are counted over
    /// every name of the slot, as an Identity gives its input a second name.
    fn sole_conv(&self, arg: &Argument) -> Option<usize> {
        let &slot = self.slots.get(&arg.name)?;
        let readers: usize = self
            .slots
            .iter()
            .filter(|&(_, &s)| s == slot)
            .map(|(name, _)| self.readers.get(name).copied().unwrap_or(0))
            .sum();
        if readers != 1 {
            return None;
        }
        let &index = self.writer.get(&slot)?;
        match self.steps[index].as_ref()?.draft {
            Draft::Conv(_) => Some(index),
            Draft::Ready(_) => None,
        }
    }

    /// Renames the output of step `index` to `output` (the node folded into it).
    fn retarget(&mut self, index: usize, output: &Argument) {
        let slot = self.slot(&output.name);
        let step = self.steps[index].as_mut().expect("a live step");
        self.writer.remove(&step.output);
        step.output = slot;
        self.writer.insert(slot, index);
    }

    fn conv_mut(&mut self, index: usize) -> &mut ConvDraft {
        match &mut self.steps[index].as_mut().expect("a live step").draft {
            Draft::Conv(c) => c,
            Draft::Ready(_) => unreachable!("sole_conv found a convolution"),
        }
    }

    /// `conv(x) + r` with the convolution's output read only here: the addition moves into
    /// the convolution (which moves to this point of the program, where `r` is computed).
    fn fuse_residual(&mut self, node: &Node, out: &Argument) -> Result<bool, Refusal> {
        let inputs = node.inputs();
        let fusable = |c: &Self, arg: &Argument| {
            c.sole_conv(arg).filter(|&i| {
                let Some(Draft::Conv(conv)) = c.steps[i].as_ref().map(|s| &s.draft) else {
                    return false;
                };
                !conv.relu && !conv.residual && same_static_shape(&inputs[0], &inputs[1])
            })
        };
        let (index, other) = match (fusable(self, &inputs[0]), fusable(self, &inputs[1])) {
            (Some(i), _) => (i, &inputs[1]),
            (None, Some(i)) => (i, &inputs[0]),
            (None, None) => return Ok(false),
        };
        let r = self.operand(node.name(), other)?;
        let mut step = self.steps[index].take().expect("a live step");
        step.inputs.push(r);
        if let Draft::Conv(c) = &mut step.draft {
            c.residual = true;
        }
        self.writer.remove(&step.output);
        let slot = self.slot(&out.name);
        step.output = slot;
        self.writer.insert(slot, self.steps.len());
        self.steps.push(Some(step));
        Ok(true)
    }

    fn finish(self, output: usize) -> Program<B> {
        let device = self.device;
        let mut steps: Vec<Step<B>> = self
            .steps
            .into_iter()
            .flatten()
            .map(|s| Step {
                op: match s.draft {
                    Draft::Ready(op) => op,
                    Draft::Conv(c) => conv_op::<B>(c, device),
                },
                take: vec![false; s.inputs.len()],
                inputs: s.inputs,
                output: s.output,
                node: s.node,
            })
            .collect();
        // Each slot is moved out by the last step that reads it.
        let mut seen = vec![false; self.count];
        seen[output] = true;
        for step in steps.iter_mut().rev() {
            for (i, &slot) in step.inputs.iter().enumerate().rev() {
                if !seen[slot] && !step.inputs[..i].contains(&slot) {
                    step.take[i] = true;
                }
                seen[slot] = true;
            }
        }
        Program {
            slots: self.count,
            input: 0,
            constants: self.constants,
            steps,
            output,
        }
    }
}

/// Whether an operand is a float tensor computed on the device (not a shape, nor a number
/// of the shape arithmetic, nor a constant).
fn on_device(arg: &Argument) -> bool {
    matches!(&arg.ty, ArgType::Tensor(t) if t.dtype.is_float())
}

/// Whether two operands of an addition have one and the same fully known shape (but for the
/// batch), so that the kernel's residual (the output's shape) applies.
fn same_static_shape(a: &Argument, b: &Argument) -> bool {
    let shape = |x: &Argument| match &x.ty {
        ArgType::Tensor(t) => t.static_shape.clone().filter(|s| s.len() == 4),
        _ => None,
    };
    match (shape(a), shape(b)) {
        (Some(x), Some(y)) => x[1..] == y[1..] && x[1..].iter().all(Option::is_some),
        _ => false,
    }
}

/// The operator of a node, as onnx-ir's node type names it (its `Debug` starts with it).
fn operator_name(node: &Node) -> String {
    let debug = format!("{node:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("?")
        .to_string()
}
