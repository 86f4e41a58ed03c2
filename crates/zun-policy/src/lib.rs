//! The oslo.policy rule language and Zun default rules (being written).
