"""Adapters: real Python training stacks driven through gacc's cases, their own training step
unchanged. Each module offers ``oracle_stack(...)`` and ``differential_stack(...)``, callables for
``gacc.check(stack, mode="oracle" | "differential")``:

    gacc.adapters.transformers   Hugging Face Trainer with gradient_accumulation_steps
    gacc.adapters.accelerate     Accelerator.accumulate
    gacc.adapters.lightning      Lightning's Trainer with accumulate_grad_batches

Each stack is imported only when its adapter is, and is pinned in python/requirements-stacks.txt.
"""
