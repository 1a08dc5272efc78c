import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    for step in tracer.iter[:4]:
        zeros = torch.zeros_like(model.transformer.h[2].mlp.input)
        model.transformer.h[2].mlp.skip(zeros)
        m = model.transformer.h[2].mlp.output[0, -1, :4].save()
        model.transformer.h[3].attn.skip((model.transformer.h[3].attn.input * 0.1, None))
        out = model.transformer.h[3].output[0][0, -1, :4].save()
    ids = model.generator.output.save()
print(ids[0, -4:].tolist())
