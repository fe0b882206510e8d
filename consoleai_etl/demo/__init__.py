"""Demo material, apart from the product: the sample legacy database generator and the
ConsoleAI domain DDL it is built from.
"""
