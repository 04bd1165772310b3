//! Tensors of the graph: a shape of rank 1 ..= 4 (one sample, no batch dimension, channels innermost), the
//! integer path's quantization (scale and zero point), and where each lives in the arena on either path.

use crate::format::MAX_RANK;

/// The shape of one sample of a tensor, row-major, channels last (an image is `[height, width, channels]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    rank: u8,
    dims: [u16; MAX_RANK],
}

impl Shape {
    /// No shape (rank 0): an unused slot.
    pub(crate) const EMPTY: Shape = Shape {
        rank: 0,
        dims: [0; MAX_RANK],
    };

    /// A shape from its dimensions (rank = `dims.len()`, at most 4; each at least 1), or `None`.
    pub fn new(dims: &[u16]) -> Option<Shape> {
        if dims.is_empty() || dims.len() > MAX_RANK || dims.contains(&0) {
            return None;
        }
        let mut d = [0u16; MAX_RANK];
        d.iter_mut().zip(dims).for_each(|(a, b)| *a = *b);
        Some(Shape {
            rank: dims.len() as u8,
            dims: d,
        })
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        usize::from(self.rank)
    }

    /// The dimensions.
    pub fn dims(&self) -> &[u16] {
        self.dims.get(..self.rank()).unwrap_or(&[])
    }

    /// Dimension `i` as a count (0 past the rank).
    pub fn dim(&self, i: usize) -> usize {
        self.dims().get(i).map_or(0, |&d| usize::from(d))
    }

    /// Elements (0 for the rank-0 empty shape; callers bound it by `MAX_ELEMENTS`).
    pub fn len(&self) -> usize {
        if self.rank == 0 {
            return 0;
        }
        self.dims()
            .iter()
            .fold(1usize, |n, &d| n.saturating_mul(usize::from(d)))
    }

    /// Whether it holds no elements (never, for a shape built by [`Shape::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(height, width, channels)` of a rank-3 shape.
    pub fn hwc(&self) -> Option<(usize, usize, usize)> {
        (self.rank == 3).then(|| (self.dim(0), self.dim(1), self.dim(2)))
    }

    /// The last dimension (channels, or features).
    pub fn last(&self) -> usize {
        self.dim(self.rank().saturating_sub(1))
    }
}

/// A tensor as the model keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tensor {
    pub shape: Shape,
    /// Integer path: the zero point.
    pub zero_point: i8,
    /// Integer path: the scale, as f32 bits (kept as bits so that the integer-only build holds no floats).
    pub scale_bits: u32,
    /// Byte offsets in the arena: `[f32 path, integer path]`.
    pub offset: [usize; 2],
}

impl Tensor {
    /// A tensor slot before loading.
    pub const EMPTY: Tensor = Tensor {
        shape: Shape::EMPTY,
        zero_point: 0,
        scale_bits: 0,
        offset: [0; 2],
    };
}

/// Which numeric path: an index into per-path tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    F32 = 0,
    Int = 1,
}

impl Path {
    /// Bytes per activation element.
    pub fn element_bytes(self) -> usize {
        match self {
            Path::F32 => 4,
            Path::Int => 1,
        }
    }
}
