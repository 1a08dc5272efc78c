import torch
import torch.nn.functional as F
with model.trace("Hello world"):
    x = model.transformer.h[2].output[0][0, -1, :6]
    e = torch.exp(x).save()
    l = torch.log(x.abs() + 1).save()
    r = torch.sqrt(x.abs()).save()
    a = x.abs().save()
    t = torch.tanh(x).save()
    rl = torch.relu(x).save()
    g = F.gelu(x).save()
    c = torch.clamp(x, min=-0.5, max=0.5).save()
    c2 = x.clamp(min=0).save()
    p = torch.pow(x, 2).save()
    p2 = (x ** 3).save()
    sg = torch.sigmoid(x).save()
    rl2 = F.relu(x).save()
    neg = (-x).save()
