//! Recipes: the YAML model, template rendering and the step scripts (being written).
