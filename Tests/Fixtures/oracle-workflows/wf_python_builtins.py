import torch
xs = [3, 1, 4, 1, 5, 9, 2, 6]
print(xs[slice(1, 5, 2)], next(iter(xs)), list(enumerate(xs[:3], start=1)))
print(list(zip(xs[:3], "abc", strict=True)), list(reversed(xs)), divmod(17, 5), divmod(-7, 2))
print(hash(3) == hash(3), hash("a") == hash("a"))
it = iter([10, 20])
print(next(it), next(it), next(it, "done"))
with model.trace("The Eiffel Tower is in the city of"):
    h = model.transformer.h[0].output[0].save()
k = h[0, :, 0].argmax().item()
print(k, h[0, k, :2], h[0, [1, 2], 0], h[0, 1, [0, 3]])
m = h[0, :, 0] > 0
print(h[0][m].shape, h[0, :, 0][m].shape)
c = h.clone()
c[0, 0, 0] = 5.0
print(c[0, 0, :2], h[0, 0, :2])
idx0 = torch.tensor([0, 1])
idx1 = torch.tensor([2, 3])
print(h[0, idx0, idx1])
