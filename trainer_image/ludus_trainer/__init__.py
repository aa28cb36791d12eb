"""Ludus trainer: elastic PyTorch training with checkpoint/resume, metrics and progress.

Run it under torchrun (`python -m ludus_trainer --workload digits`), or use
the small API from your own script:

    from ludus_trainer import api
    ctx = api.init()                       # process group from torchrun's environment
    ckpt = api.checkpoints()               # atomic, keeps the last K, newest good one loads
    state = ckpt.load_latest()             # None on a fresh start
    ...
    ckpt.save(step, {"model": model.state_dict(), ...})
    api.report(step=step, loss=loss, total_steps=n)   # metrics + progress record
"""

__version__ = "0.1.0"
