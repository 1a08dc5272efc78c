import torch
from nnsight import LanguageModel

model = LanguageModel("openai-community/gpt2", device_map="auto")
print(model.config.n_layer, model.config.n_embd)
with model.trace("This program is free software") as tracer:
    preds = list().save()
    for layer in model.transformer.h:
        preds.append(model.lm_head(model.transformer.ln_f(layer.output[0]))[0, -1].argmax(dim=-1))
print([model.tokenizer.decode(p) for p in preds])
