import torch
torch.manual_seed(0)
W_enc = torch.randn(64, 128) * 0.1
b_enc = torch.zeros(128)
W_dec = W_enc.t().clone()
with model.trace("The Eiffel Tower is in the city of"):
    h = model.transformer.h[1].output[0]
    f = torch.relu(h @ W_enc + b_enc)
    recon = f @ W_dec
    model.transformer.h[1].output[0][:] = recon
    active = (f > 0).sum(-1).save()
    err = (recon - h).pow(2).mean().save()
    logits = model.lm_head.output[0, -1].save()
print(active.tolist(), round(err.item(), 4), logits.argmax().item())
