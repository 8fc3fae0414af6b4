"""Stage glue: each function reads a stage's inputs, calls the library, writes its outputs
atomically and logs the stage to MLflow. ``safervlm.cli`` maps one subcommand to each."""
