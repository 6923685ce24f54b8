# One gradient (forward + backward + cross-entropy) of the zoo's models in PyTorch, one thread,
# batch B, MNIST-shaped input: what a PyTorch user pays per function call. The architectures
# are src/model/zoo.ts's, layer for layer. One model per process, so that the peak RSS is
# one function's. Prints one JSON line {"msPerGradient": median, "peakRssMb": peak}.
# Run by bench/compute.ts:  python3 bench/gradient.py BATCH RUNS MODEL
import json, resource, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(5 * 5 * 64, 128), nn.ReLU(), nn.Linear(128, 10))


def vgg11():
    layers, c = [], 1
    for v in [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512]:
        if v == 'M':
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        h = self.b2(self.c2(h))
        return F.relu(h + (self.down(x) if self.down is not None else x))


def resnet18():
    layers, c = [nn.Conv2d(1, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for s, cout in enumerate([64, 128, 256, 512]):
        for b in range(2):
            layers.append(Block(c, cout, 2 if b == 0 and s > 0 else 1))
            c = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.f(x)], 1)


def densenet121():
    growth, c = 32, 64
    layers = [nn.Conv2d(1, c, 3, padding=1, bias=False)]
    for bi, n in enumerate([6, 12, 24, 16]):
        for _ in range(n):
            layers.append(DenseLayer(c, growth))
            c += growth
        if bi < 3:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2)]
            c //= 2
    return nn.Sequential(*layers, nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


if __name__ == "__main__":
    batch, runs = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    model = {"cnn": cnn, "vgg11": vgg11, "resnet18": resnet18, "densenet121": densenet121}[sys.argv[3]]()
    times = []
    for i in range(runs + 1):  # one warm-up
        t = time.perf_counter()
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        times.append((time.perf_counter() - t) * 1000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"msPerGradient": statistics.median(times[1:]), "peakRssMb": peak}))
