import torch
x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
print(x[0, [1, 2]].shape, x[0, :, [1, 2]].shape, x[:, [0, 1], :, [2, 3]].shape, x[[0, 1], [1, 2]].shape, x[..., [1, 2]].shape, x[None, 0, [1], 2:].shape)
print(x[0, [1, 2], 3].tolist(), x[:, [0, 2], 1, [4, 0]].tolist(), x[1, -1, [-1, 0], 1:4:2].tolist())
m = x[0, 0] > 7
print(x[0, 0][m].tolist(), x[0][x[0] % 7 == 0].tolist())
with model.trace("The Eiffel Tower is in the city of"):
    h = model.transformer.h[0].output[0].save()
    a = h[0, [1, 2], 3].save()
    b = h[:, [0, 2], [5, 6]].save()
    idx = torch.tensor([[1, 2], [3, 4]])
    c = h[0, idx, :2].save()
    d = h[0, :, [7, 8]].save()
print(a.shape, b.shape, c.shape, d.shape)
print(torch.equal(c[1, 0], h[0, 3, :2]), torch.equal(d[:, 0], h[0, 0, 7:9]))
