"""Local implementations of SageMaker built-in algorithm containers."""
