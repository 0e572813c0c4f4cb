"""The pure core: numpy / scikit-learn only. Never imports Kafka, Redis or faust code.

Packages, lowest first (a package may import those listed before it, never after):

* ``data`` -- datasets and the feature encoder;
* ``evaluation`` -- probability and confidence metrics;
* ``registry`` -- immutable, versioned, hash-checked artifacts;
* ``members`` -- model families, out-of-fold fitting, the fitted pool;
* ``combiners`` -- voting, averaging, weighted, stacking, boosting over member probabilities;
* ``selection`` -- branch-and-bound, Caruana, dynamic selection, the re-selection cache;
* ``confidence`` -- calibration, conformal sets, uncertainty, explanations;
* ``strategies`` -- a selection plus a combiner, served under a changing healthy set;
* ``training`` -- the pipeline from a dataset to registry versions.

Every package's ``__init__`` docstring says what it owns and what it may import;
``tests/unit/test_purity.py`` enforces both.
"""
