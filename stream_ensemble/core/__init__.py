"""The pure core: numpy / scikit-learn only. Never imports Kafka, Redis or faust code."""
