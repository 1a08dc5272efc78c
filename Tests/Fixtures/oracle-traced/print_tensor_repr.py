import torch
with model.trace("Hello world"):
    x = model.transformer.h[0].output[0][0, -1, :4]
    print(x)
    m = model.transformer.h[3].mlp.output[0, :2, :3]
    print(m)
    ids = model.lm_head.output[0].argmax(dim=-1)
    print(ids)
    b = x > 0
    print(b)
    s = x.sum()
    print(s)
    print(x * 0.5, model.lm_head.output[0, -1, :5])
    print(torch.tensor([1.5e-5, 2.0, 3e4]), torch.arange(1200) * 0.5)
    print(torch.tensor([[True, False], [False, True]]), torch.tensor([1.0, 2.0]) * x[:2])
    print(m.T, m.shape)
