//! kiln-builder: recipes, plans and input hashes, the bake, distribution and the image
//! catalogue.

pub mod recipe;
