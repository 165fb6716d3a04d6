"""The data contract (schemas, readers, validator), Datasets and DataModules."""
