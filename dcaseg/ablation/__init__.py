"""The ablation benchmark on the synthetic abdomen (paper Tables 3-5): variants, runner, report."""
