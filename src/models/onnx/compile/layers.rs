//! Convolutions and batch norms: drafted on the host, so that a batch norm after a
//! convolution is folded into its weights before they go to the device.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use onnx_ir::ArgType;
use onnx_ir::node::padding::{AutoPad, PaddingConfig2d as OnnxPadding};

use super::constants::{float_on, static_host, vector_param};
use super::{Compiler, ConvDraft, Draft, Refusal, refuse};
use crate::models::onnx::program::Op;

impl<B: Backend> Compiler<'_, B> {
    pub(super) fn conv(&mut self, n: &onnx_ir::node::conv2d::Conv2dNode) -> Result<(), Refusal> {
        let name = &n.name;
        let c = &n.config;
        let x = self.operand(name, &n.inputs[0])?;
        let weight = static_host(name, n.inputs.get(1), "weight")?;
        if weight.dims.len() != 4 || weight.dims[2..] != c.kernel_size {
            return refuse(
                name,
                format!(
                    "weight of shape {:?} for a {:?} kernel",
                    weight.dims, c.kernel_size
                ),
            );
        }
        let bias = match n.inputs.get(2).filter(|a| !a.is_optional()) {
            Some(arg) => {
                let b = static_host(name, Some(arg), "bias")?.data;
                if b.len() != weight.dims[0] {
                    return refuse(name, "bias length differs from the output channels");
                }
                Some(b)
            }
            None => None,
        };
        if c.groups == 0 || !weight.dims[0].is_multiple_of(c.groups) {
            return refuse(name, format!("{} groups", c.groups));
        }
        let padding = padding(name, &c.padding, c.auto_pad.clone())?;
        let draft = ConvDraft {
            weight,
            bias,
            stride: c.stride,
            dilation: c.dilation,
            groups: c.groups,
            padding,
            residual: false,
            relu: false,
        };
        self.push(Draft::Conv(draft), vec![x], &n.outputs[0], name);
        Ok(())
    }

    pub(super) fn batch_norm(
        &mut self,
        n: &onnx_ir::node::batch_norm::BatchNormalizationNode,
    ) -> Result<(), Refusal> {
        use onnx_ir::node::batch_norm::BatchNormConfig;
        let name = &n.name;
        let epsilon = match &n.config {
            BatchNormConfig::Static(c) => c.epsilon,
            BatchNormConfig::Runtime(_) => {
                return refuse(name, "batch norm statistics computed at run time");
            }
        };
        let part = |i: usize, what: &str| static_host(name, n.inputs.get(i), what).map(|h| h.data);
        let (gamma, beta, mean, var) = (
            part(1, "scale")?,
            part(2, "bias")?,
            part(3, "mean")?,
            part(4, "variance")?,
        );
        let channels = gamma.len();
        if [&beta, &mean, &var].iter().any(|v| v.len() != channels) {
            return refuse(name, "batch norm parameters of different lengths");
        }
        // y = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift.
        let scale: Vec<f32> = gamma
            .iter()
            .zip(&var)
            .map(|(&g, &v)| (f64::from(g) / (f64::from(v) + epsilon).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| (f64::from(b) - f64::from(m) * f64::from(s)) as f32)
            .collect();
        let folding = self.sole_conv(&n.inputs[0]).filter(|&i| {
            let Some(Draft::Conv(c)) = self.steps[i].as_ref().map(|s| &s.draft) else {
                return false;
            };
            !c.relu && !c.residual && c.weight.dims[0] == channels
        });
        if let Some(index) = folding {
            let conv = self.conv_mut(index);
            let per_channel = conv.weight.data.len() / channels;
            for (o, row) in conv.weight.data.chunks_exact_mut(per_channel).enumerate() {
                row.iter_mut().for_each(|w| *w *= scale[o]);
            }
            let bias = conv.bias.get_or_insert_with(|| vec![0.0; channels]);
            for (o, b) in bias.iter_mut().enumerate() {
                *b = (f64::from(*b) * f64::from(scale[o]) + f64::from(shift[o])) as f32;
            }
            self.retarget(index, &n.outputs[0]);
            return Ok(());
        }
        let x = self.operand(name, &n.inputs[0])?;
        let rank = match &n.inputs[0].ty {
            ArgType::Tensor(t) => t.rank,
            _ => return refuse(name, "batch norm of a non-tensor"),
        };
        let mut dims = vec![1; rank.max(2)];
        dims[1] = channels;
        let op = Op::Affine {
            scale: float_on::<B>(scale, &dims, self.device),
            shift: float_on::<B>(shift, &dims, self.device),
        };
        self.push(Draft::Ready(op), vec![x], &n.outputs[0], name);
        Ok(())
    }
}

pub(super) fn conv_op<B: Backend>(c: ConvDraft, device: &B::Device) -> Op<B> {
    let kernel = [c.weight.dims[2], c.weight.dims[3]];
    let layer = Conv2d {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(c.weight.data, c.weight.dims),
            device,
        )),
        bias: c.bias.map(|b| vector_param::<B>(b, device)),
        stride: c.stride,
        kernel_size: kernel,
        dilation: c.dilation,
        groups: c.groups,
        padding: c.padding,
    };
    Op::Conv {
        layer,
        residual: c.residual,
        relu: c.relu,
    }
}

pub(super) fn padding(
    node: &str,
    padding: &OnnxPadding,
    auto: AutoPad,
) -> Result<PaddingConfig2d, Refusal> {
    match auto {
        AutoPad::NotSet | AutoPad::Valid => {}
        other => return refuse(node, format!("auto_pad {other:?} is not supported")),
    }
    Ok(match *padding {
        OnnxPadding::Valid => PaddingConfig2d::Valid,
        OnnxPadding::Explicit(t, l, b, r) => PaddingConfig2d::Explicit(t, l, b, r),
    })
}
