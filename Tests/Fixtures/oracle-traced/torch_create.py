import torch
with model.trace("The Eiffel Tower is in the city of"):
    z = torch.zeros(3).save()
    o = torch.ones(2, 3).save()
    f = torch.full((2,), 7.0).save()
    ar = torch.arange(5).save()
    ar2 = torch.arange(1, 10, 3).save()
    tt = torch.tensor([1.5, -2.0, 3.25]).save()
    ti = torch.tensor([3, 1, 2]).save()
    h0 = model.transformer.h[0].output[0][0, -1, :3]
    c = torch.cat([h0[:2], tt], dim=0).save()
    st = torch.stack([h0, tt]).save()
    steer = torch.zeros(64)
    steer[0] = 5.0
    model.transformer.h[1].output[0][:, -1, :] += steer
    h = model.transformer.h[1].output[0][0, -1, :3].save()
    out = model.lm_head.output[0, -1].argmax().save()
print(z, o, f, ar, ar2, tt, ti)
