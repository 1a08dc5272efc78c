with model.generate(max_new_tokens=3) as tracer:
    barrier = tracer.barrier(2)
    with tracer.invoke("The Eiffel Tower is in the city of"):
        clean = model.transformer.h[2].output[0][:, -1]
        barrier()
    with tracer.invoke("The Colosseum is in the city of"):
        barrier()
        model.transformer.h[2].output[0][:, -1] = clean
        out = tracer.result.save()
print(out[:, -3:].tolist())
