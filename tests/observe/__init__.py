"""Tests of what a run shows (``fanfetch._observe``): summary, progress, dashboard, notebook,
metrics."""
