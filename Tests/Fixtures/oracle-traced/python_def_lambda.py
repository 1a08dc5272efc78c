import torch

def norm_of(t, dim=-1):
    return t.norm(dim=dim)

def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

square = lambda v: v * v
with model.trace("Hello world"):
    h = model.transformer.h[1].output[0][0]
    n = norm_of(h).save()
    sq = square(h[-1, :3]).save()
    k = fib(7)
    layers = {"first": 0, "last": 3}
    picks = [name for name in layers if layers[name] > 0]
    hl = model.transformer.h[layers["last"]].output[0][0, -1, :2].save()
    info = (k, picks, 3 in [1, 2, 3], None is None, isinstance(k, int), isinstance(h, torch.Tensor))
    print(info)
print(k if False else "no k", fib(10), square(4), sorted([3, 1, 2], reverse=True), min(4, 2, 8), max([1, 9]), sum([1, 2, 3.5]))
print(abs(-3), round(2.675, 2), round(7.5), " a b ".strip(), "a-b-c".replace("-", "+"), "x,y".split(","), "-".join(["p", "q"]), "{} and {}".format(1, "two"))
