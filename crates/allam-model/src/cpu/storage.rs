//! Reading f32 tensors of the CPU backend in place.
//!
//! The CPU fast paths (`matvec`, `attention`, `swiglu`) read a Flex tensor's storage through its
//! layout instead of asking Burn for a contiguous copy. Only plain f32 tensors qualify: an
//! autodiff-tracked tensor is refused, since reading its storage would drop its gradient.
use burn::backend::{BackendTypes, Flex};
use burn::tensor::{DType, Tensor};

/// The Flex backend's float tensor (storage, layout and dtype).
pub(crate) type FlexFloat = <Flex as BackendTypes>::FloatTensorPrimitive;

/// The Flex primitive of `tensor`, when it is a plain (not autodiff) f32 tensor on Flex.
pub(crate) fn flex_f32<const D: usize>(tensor: &Tensor<D>) -> Option<FlexFloat> {
    if tensor.dtype() != DType::F32 {
        return None;
    }
    tensor.clone().try_into_primitive::<Flex>().ok()
}

/// A `D`-dimensional view of f32 storage: element `at` sits at `offset + Σ at[i] · strides[i]`.
pub(crate) struct Strided<'a, const D: usize> {
    pub data: &'a [f32],
    pub offset: usize,
    pub shape: [usize; D],
    pub strides: [usize; D],
}

impl<const D: usize> Strided<'_, D> {
    /// Where element `at` sits in `data`.
    pub fn index(&self, at: [usize; D]) -> usize {
        self.offset + at.iter().zip(&self.strides).map(|(i, s)| i * s).sum::<usize>()
    }
}

/// A view of `primitive`'s storage, if it has `D` dimensions, no negative stride, at least one
/// element, and every element inside the storage (so any index within the shape is safe).
pub(crate) fn strided<const D: usize>(primitive: &FlexFloat) -> Option<Strided<'_, D>> {
    let layout = primitive.layout();
    if layout.num_dims() != D {
        return None;
    }
    let shape: [usize; D] = std::array::from_fn(|i| layout.shape()[i]);
    let strides: Vec<usize> = layout
        .strides()
        .iter()
        .map(|&s| usize::try_from(s).ok())
        .collect::<Option<_>>()?;
    let strides: [usize; D] = strides.try_into().ok()?;
    let data = primitive.storage::<f32>();
    let view = Strided {
        data,
        offset: layout.start_offset(),
        shape,
        strides,
    };
    if shape.contains(&0) {
        return None;
    }
    let last = view.index(shape.map(|n| n - 1));
    (last < data.len()).then_some(view)
}
