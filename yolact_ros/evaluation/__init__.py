"""Evaluation: COCO box / mask AP of a Segmenter (``coco_eval``), the one COCO-results
encoder (``coco_results``) and the scoring of a recorded stream against ground truth
(``stream``, used by the demo).  Imports nothing itself."""
