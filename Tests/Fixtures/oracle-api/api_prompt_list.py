with model.generate(["Hello world", "The Eiffel Tower is in the city of"], max_new_tokens=3) as tracer:
    h = model.transformer.h[0].output[0]
    print(h.shape, h[:, -1].shape)
    last = model.lm_head.output[:, -1].argmax(dim=-1).save()
    out = model.generator.output.save()
print(out.shape)
print(model.tokenizer.batch_decode(out[:, -3:]))
