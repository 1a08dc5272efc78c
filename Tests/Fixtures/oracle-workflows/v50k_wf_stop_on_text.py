import nnsight
import torch
with model.generate("Hello, my name is", max_new_tokens=12) as tracer:
    out = [].save()
    for step in tracer.iter[:]:
        logits = model.lm_head.output[0, -1]
        tok = logits.argmax(dim=-1)
        text = model.tokenizer.decode(tok)
        out.append(text)
        if len(text.strip()) > 3:
            last = nnsight.save(text)
            tracer.stop()
    h = model.transformer.h[0].output[0].save()
print(out, last)
