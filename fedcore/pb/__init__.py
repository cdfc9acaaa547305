"""Generated protobuf/gRPC modules; regenerate with python -m fedcore.codegen."""
