import torch
with model.trace("The Eiffel Tower is in the city of"):
    e3 = torch.einsum("bth->bt", model.transformer.h[0].output[0]).save()
    h = model.transformer.h[1].output[0][0]
    w = model.transformer.h[2].output[0][0]
    gram = (h @ h.T).save()
    mm = torch.matmul(h[:3], w[:4].T).save()
    vec = torch.matmul(h[0], w[1]).save()
    e1 = torch.einsum("td,sd->ts", h[:2], w[:3]).save()
    e2 = torch.einsum("d,d->", h[0], w[0]).save()
    cs = torch.cosine_similarity(h, w, dim=-1).save()
    cs2 = torch.nn.functional.cosine_similarity(h[-1], w[-1], dim=0).save()
