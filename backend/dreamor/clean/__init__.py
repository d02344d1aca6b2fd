"""`dreamor clean`: a whole library of takes cleaned in one command -- faults found (``detect``), repaired by
the refinement, written with a report (``library``, ``report``), on a local process pool or a Ray cluster."""
