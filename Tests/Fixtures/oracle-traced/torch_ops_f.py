import torch
with model.trace("Hello world"):
    x = model.transformer.h[3].output[0][0, -1, :8]
    gt = (x > 0).save()
    le = (x <= 0.1).save()
    eq = (x == x).save()
    both = ((x > -1) & (x < 1)).save()
    either = ((x > 1) | (x < -1)).save()
    nt = (~(x > 0)).save()
    al = torch.all(x < 1e5).save()
    an = (x > 100).any().save()
    wh = torch.where(x > 0, x, torch.zeros_like(x)).save()
    wh2 = torch.where(x > 0, 1.0, -1.0).save()
    il = x[[0, 2, 5]].save()
    idx = model.lm_head.output[0, -1].topk(3).indices
    ti = model.lm_head.output[0, -1][idx].save()
    fl = (x > 0).float().save()
    lg = (x * 10).long().save()
    to = x.to(torch.float32).cpu().detach().clone().contiguous().save()
    tl = x.to("cpu").save()
