import torch
hits = []
with model.generate("Hello world", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        tok = model.lm_head.output[0, -1].argmax(dim=-1)
        if (tok == model.lm_head.output[0, -1].argmax()).any():
            hits.append(tok.save())
        if tok.item() > 100000:
            model.transformer.h[1].output[0][:] = 0
            print("never")
    out = model.generator.output.save()
print(len(hits), out.shape)
