//! Docker Engine driver (placeholder: being written).
