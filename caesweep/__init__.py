"""caesweep's one command: ``caesweep run|resume|confirm|list|export|report|dashboard|train|data|apply|bench``."""
