# A gloo all-reduce of one float32 vector among N processes on loopback, with
# torch.distributed: what a PyTorch DDP user pays per step for the same vector. Prints one
# JSON line: {"medianMs": ..., "samplesMs": [...], "cpuMsPerRound": ...} (rank 0; the CPU is
# every rank's process CPU over the measured rounds, barriers included, summed, per round).
# Run by bench/round.ts.
#   python3 bench/allreduce.py N LENGTH ROUNDS PORT
import json, os, statistics, sys, time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank, world, length, rounds, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    x = torch.ones(length, dtype=torch.float32)
    times = []
    for i in range(rounds + 2):  # two warm-up rounds
        if i == 2:
            cpu0 = time.process_time()
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(x)
        times.append((time.perf_counter() - t) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / rounds
    out.put((rank, times[2:], cpu))
    dist.destroy_process_group()


if __name__ == "__main__":
    world, length, rounds, port = (int(a) for a in sys.argv[1:5])
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=run, args=(r, world, length, rounds, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    results = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    samples = next(r[1] for r in results if r[0] == 0)
    cpu = sum(r[2] for r in results)
    print(json.dumps({"medianMs": statistics.median(samples), "samplesMs": samples, "cpuMsPerRound": cpu}))
