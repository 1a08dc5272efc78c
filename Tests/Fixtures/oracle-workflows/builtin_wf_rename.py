import torch
from nnsight import LanguageModel
model = LanguageModel("openai-community/gpt2", rename={"transformer.h": "layers", "mlp": "ffn", "attn.c_proj": "attn.o_proj"})
with model.trace("The Eiffel Tower is in the city of"):
    c = model.layers[0].attn.o_proj.output[0, -1, :4].save()
    d = model.transformer.h[0].attn.c_proj.output[0, -1, :4].save()
    b = model.transformer.h[1].ffn.output[0, -1, :4].save()
    a = model.layers[1].output[0][0, -1, :4].save()
print(a.shape, b.shape, torch.equal(c, d), len(model.layers))
